# SPDX-License-Identifier: ISC
"""Entry points (taskexec(1), taskexec-tasks(7)): module:function,
module:Class.method on a fresh instance made with Class(), static and class
methods on the class, dotted nested classes, any callable attribute, and
coroutines run to completion."""
import json

import pytest

from shimlib import completed, failed, identical, rejected, run


def test_module_function():
    identical(completed(run("shimtasks.entries:plain", "x=1")), {"called": "plain", "x": 1})


def test_instance_method_runs_on_one_fresh_instance():
    identical(completed(run("shimtasks.entries:Widget.describe", "label=w")),
              {"class": "Widget", "ready": True, "instances": 1, "label": "w"})


def test_inherited_instance_method_runs_on_the_named_class():
    identical(completed(run("shimtasks.entries:SubWidget.describe", "label=s")),
              {"class": "SubWidget", "ready": True, "instances": 1, "label": "s"})


def test_staticmethod_is_called_on_the_class():
    identical(completed(run("shimtasks.entries:Widget.double", "x=21")), {"static": 42, "instances": 0})


def test_classmethod_is_called_on_the_class():
    identical(completed(run("shimtasks.entries:Widget.kind", "suffix=!")), {"cls": "Widget!", "instances": 0})


def test_inherited_classmethod_gets_the_named_class():
    identical(completed(run("shimtasks.entries:SubWidget.kind")), {"cls": "SubWidget", "instances": 0})


def test_nested_class_method():
    assert completed(run("shimtasks.entries:Outer.Inner.where")) == "Outer.Inner"


def test_callable_module_attribute():
    assert completed(run("shimtasks.entries:add", "a=2", "b=3")) == 5


def test_callable_module_attribute_is_bound_to_its_signature():
    failed(run("shimtasks.entries:add", "a=1", "b=2", "c=1"), "exception",
           "TypeError: Adder.__call__() got an unexpected keyword argument 'c'", "TypeError", False)


def test_decorated_function_binds_to_the_wrapped_signature():
    identical(completed(run("shimtasks.entries:decorated", "x=2")), {"wrapped": 3})
    failed(run("shimtasks.entries:decorated", "x=2", "z=1"), "exception",
           "TypeError: decorated() got an unexpected keyword argument 'z'", "TypeError", False)


def test_decorated_instance_method():
    identical(completed(run("shimtasks.entries:Service.compute", "x=1")), {"wrapped": 101})


def test_async_function_result_is_awaited():
    identical(completed(run("shimtasks.entries:fetch", "x=5", "delay=0.01")),
              {"async": True, "x": 5, "loop_ran": True})


def test_async_method_result_is_awaited():
    identical(completed(run("shimtasks.entries:Widget.later", "x=[1]")), {"async_method": [1], "ready": True})


def test_async_exception_is_reported():
    r = run("shimtasks.entries:fetch_fails", "x=3")
    s = failed(r, "exception", "LookupError: no such record 3", "LookupError", True)
    assert 'raise LookupError("no such record %s" % x)' in s["traceback"], r.explain()


def test_unknown_function_fails_without_retry():
    failed(run("shimtasks.entries:nosuch"), "exception",
           "AttributeError: module 'shimtasks.entries' has no attribute 'nosuch'", "AttributeError", False)


def test_unknown_method_fails_without_retry():
    failed(run("shimtasks.entries:Widget.nosuch"), "exception",
           "AttributeError: Widget has no method 'nosuch'", "AttributeError", False)


@pytest.mark.parametrize("entry, reason", [
    ("shimtasks.entries:_hidden",
     "method_name: '_hidden' is not a dotted name of identifiers that do not start with '_'"),
    ("shimtasks.entries:Widget.__init__",
     "method_name: 'Widget.__init__' is not a dotted name of identifiers that do not start with '_'"),
    ("shimtasks._private:run",
     "module_path: 'shimtasks._private' is not a dotted name of identifiers that do not start with '_'"),
    ("tasks.f5portalupdate.main:run",
     "module_path: 'tasks.f5portalupdate.main' is not under an allowed package (shimtasks)"),
    ("shimtasks.nosuchmodule:run",
     "module_path: 'shimtasks.nosuchmodule' is not a module file under the task roots"),
], ids=["private-function", "special-method", "private-module", "not-allowed", "no-module"])
def test_entries_that_can_never_run_are_rejected(entry, reason):
    rejected(run(entry), reason)


# --------------------------------------------------------------------------
# Only what the task module defines is an entry point (issue 8 item 9)

def _refused(r, field, value, what, origin):
    reason = (f"PermissionError: {field}: {value!r} is {what}, not defined in module 'shimtasks.borrowed'; "
              "only functions and classes the task module defines are entry points"
              + (f" (it comes from {origin!r})" if origin else ""))
    s = failed(r, "exception", reason, "PermissionError", False)
    assert r.stdout == "", r.explain()
    return s


@pytest.mark.parametrize("entry", ["shimtasks.borrowed:remove", "shimtasks.borrowed:plain"],
                         ids=["from-os-import-remove", "function-of-another-task-module"])
def test_an_imported_function_is_refused(entry):
    method = entry.split(":")[1]
    origin = "posix" if method == "remove" else "shimtasks.entries"
    _refused(run(entry, "path=/nonexistent", "x=1"), "method_name", method, "imported", origin)


def test_a_function_reached_through_an_imported_module_is_refused():
    job = {"module_path": "shimtasks.borrowed", "method_name": "os.remove", "class_name": None,
           "task_type": "ad_hoc", "parameters": {"path": "/nonexistent"}}
    _refused(run(None, stdin=json.dumps(job)), "method_name", "os", "not a class", None)


def test_a_method_of_an_imported_class_is_refused():
    _refused(run("shimtasks.borrowed:Widget.describe", "label=x"), "class_name", "Widget", "an imported class",
             "shimtasks.entries")


def test_a_method_inherited_from_another_module_is_refused():
    _refused(run("shimtasks.borrowed:Worker.start"), "method_name", "Worker.start", "inherited from Thread",
             "threading")
    _refused(run("shimtasks.borrowed:LocalWidget.describe", "label=x"), "method_name", "LocalWidget.describe",
             "inherited from Widget", "shimtasks.entries")


def test_an_imported_function_stored_on_a_local_class_is_refused():
    _refused(run("shimtasks.borrowed:Holder.drop", "path=/nonexistent"), "method_name", "Holder.drop",
             "an imported function stored on the class", "posix")


def test_what_the_module_defines_still_runs_beside_its_imports():
    identical(completed(run("shimtasks.borrowed:own", "path=/a/b")), {"own": "b"})
    identical(completed(run("shimtasks.borrowed:Worker.mine")), {"mine": "Worker"})
    identical(completed(run("shimtasks.borrowed:LocalWidget.local")), {"local": True})
