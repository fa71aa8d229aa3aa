# SPDX-License-Identifier: ISC
"""Entry forms: module:function, module:Class.method (instance, static, class),
nested classes, callables, decorated functions and coroutines."""
import asyncio
import functools


def plain(x):
    return {"called": "plain", "x": x}


class Widget:
    made = 0

    def __init__(self):
        Widget.made += 1
        self.ready = True

    def describe(self, label):
        return {"class": type(self).__name__, "ready": self.ready, "instances": Widget.made, "label": label}

    @staticmethod
    def double(x):
        return {"static": x * 2, "instances": Widget.made}

    @classmethod
    def kind(cls, suffix=""):
        return {"cls": cls.__name__ + suffix, "instances": Widget.made}

    async def later(self, x):
        await asyncio.sleep(0)
        return {"async_method": x, "ready": self.ready}


class SubWidget(Widget):
    pass


class Outer:
    class Inner:
        def where(self):
            return type(self).__qualname__


class Adder:
    def __call__(self, a, b=0):
        return a + b


add = Adder()


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return {"wrapped": fn(*args, **kwargs)}
    return wrapper


@logged
def decorated(x, y=1):
    return x + y


class Service:
    def __init__(self):
        self.base = 100

    @logged
    def compute(self, x):
        return self.base + x


async def fetch(x, delay=0):
    await asyncio.sleep(delay)
    return {"async": True, "x": x, "loop_ran": asyncio.get_running_loop() is not None}


async def fetch_fails(x):
    await asyncio.sleep(0)
    raise LookupError("no such record %s" % x)


def _hidden():
    return "private"
