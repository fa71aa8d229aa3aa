/* SPDX-License-Identifier: ISC */
/* queue — the Redis side: claim, acknowledge, delay, requeue, heartbeat and
 * recovery, all on async connections driven by the event loop.
 *
 * Keys (all share the {prefix} hash tag, so the scripts run on one slot):
 *   {P}:queue:high|normal|low   lists of payloads, producers RPUSH
 *   {P}:wake                    zset with one member "w": producers touch it
 *   {P}:processing:<executor>   entries "<priority>|<payload>" claimed by it
 *   {P}:delayed                 zset of entries scored by due time (ms)
 *   {P}:executors               set of executor ids
 *   {P}:heartbeat:<executor>    TTL three heartbeat intervals
 *   {P}:reconcile, {P}:reconcile:switch   who sweeps this period, this failover
 * A payload leaves {P}:processing:<executor> only after its outcome is in
 * PostgreSQL, so a SIGKILL at any instant loses nothing. */
#include "queue.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

enum { C_CMD, C_BLOCK, C_SUB, C_N, C_SENTINEL = C_N };
static const char *const conn_names[] = { "command", "blocking", "subscriber", "sentinel" };

struct rconn {
	struct queue *q;
	int kind;
	redisAsyncContext *ac;
	int fd;
	uint32_t events;
	bool connected;
	int64_t backoff_ms;
	struct timer *retry;
	bool refused;                   /* the handshake failed: reconnect quietly */
	struct hs_step { struct rconn *c; int step; } hs[REDIS_HS_N];
};

struct queue {
	struct loop *loop;
	const struct config *cfg;
	const struct queue_events *ev;
	void *arg;
	struct redis_target target;
	struct rconn c[C_N];
	/* redis+sentinel://: one connection to a sentinel asks for the master,
	 * then stays subscribed to +switch-master.  Asking again is reconnecting
	 * it (a subscribed connection takes no other command). */
	struct rconn sentinel;
	int sentinel_idx;
	bool sentinel_subscribed, sentinel_again, switching, switch_pending;
	int64_t sentinel_asked_at;
	char *master;                   /* "host:port" in use, for health and logs */
	/* Redis Cluster: the node a MOVED named, taken up from the loop (not
	 * inside the callback of a context it frees); the URL's node, gone back
	 * to when the one a MOVED named does not answer. */
	char *moved_host, *seed_host;
	int moved_port, seed_port;
	bool moved;
	struct timer *move_timer;
	char *k_high, *k_normal, *k_low, *k_wake, *k_delayed, *k_proc, *k_execs, *k_hb, *k_cancel, *k_sweep,
		*k_reconcile, *k_reconcile_switch, *k_garbage, *prefix_tag;
	char token[33];                 /* this start's claim on the executor id */
	bool waiting, checked_config;
	int64_t wait_ms;
	struct timer *wait_guard, *wait_retry;
	/* The last Redis failure logged: the same cause is not logged again until
	 * a connection has come up, so an outage or a refusal is one line, not
	 * one a connection and attempt. */
	char *last_cause;
	bool closing;
};

/* ---- scripts ---------------------------------------------------------------- */

/* Every script starts from these helpers.  Keys are shared with producers and
 * operators, so any of them may hold a value of the wrong type; a command on
 * it would fail the whole script, every time, for every job.  is() checks a
 * key before it is used and remembers the ones to report (the heartbeat
 * returns them); target() picks the list a priority goes to, falling back to
 * a usable one, so an entry is never popped with nowhere to go. */
#define PRELUDE \
	"local bad, seen = {}, {}\n" \
	"local function is(k, t)\n" \
	"  local ty = redis.call('TYPE', k).ok\n" \
	"  if ty == t or ty == 'none' then return true end\n" \
	"  if not seen[k] then seen[k] = true; bad[#bad + 1] = k end\n" \
	"  return false\n" \
	"end\n" \
	"local function target(p, high, normal, low)\n" \
	"  local k = normal\n" \
	"  if p == 'high' then k = high elseif p == 'low' then k = low end\n" \
	"  if is(k, 'list') then return k end\n" \
	"  for _, o in ipairs({normal, high, low}) do if is(o, 'list') then return o end end\n" \
	"  return nil\n" \
	"end\n" \
	"local function owner(hb, token)\n" \
	"  local ty = redis.call('TYPE', hb).ok\n" \
	"  if ty == 'none' then return true end\n" \
	"  if ty ~= 'string' then return false end\n" \
	"  local ok, d = pcall(cjson.decode, redis.call('GET', hb))\n" \
	"  return ok and type(d) == 'table' and d.token == token\n" \
	"end\n" \
	"local moved = 0\n" \
	"local function aside(garbage, e)\n" \
	"  if is(garbage, 'list') then redis.call('LPUSH', garbage, e) end\n" \
	"  moved = moved + 1\n" \
	"end\n"

/* KEYS: high normal low processing wake executors; ARGV: id
 * Whoever holds a processing list is in the executors set, which is where the
 * sweep looks: an executor swept while it was cut off from Redis, that claims
 * on reconnecting and dies before its next heartbeat, still has its job put
 * back once its heartbeat lapses.  Nothing is popped unless it can be kept:
 * with our processing list or the executors set of the wrong type, nothing is
 * claimed (the heartbeat reports the key); a queue of the wrong type is
 * skipped and the others are served. */
static const char claim_lua[] = PRELUDE
	"if not (is(KEYS[4], 'list') and is(KEYS[6], 'set')) then return false end\n"
	"local prios = {'high', 'normal', 'low'}\n"
	"local usable = {is(KEYS[1], 'list'), is(KEYS[2], 'list'), is(KEYS[3], 'list')}\n"
	"for i = 1, 3 do\n"
	"  local v = usable[i] and redis.call('LPOP', KEYS[i])\n"
	"  if v then\n"
	"    local e = prios[i] .. '|' .. v\n"
	"    redis.call('RPUSH', KEYS[4], e)\n"
	"    redis.call('SADD', KEYS[6], ARGV[1])\n"
	"    local more = 0\n"
	"    for j = 1, 3 do if usable[j] then more = more + redis.call('LLEN', KEYS[j]) end end\n"
	"    if more > 0 and is(KEYS[5], 'zset') then redis.call('ZADD', KEYS[5], 0, 'w') end\n"
	"    return e\n"
	"  end\n"
	"end\n"
	"return false\n";

/* KEYS: processing delayed; ARGV: entry due
 * The entry stays where it is when the delayed set cannot take it. */
static const char delay_lua[] = PRELUDE
	"if not is(KEYS[2], 'zset') then return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is not a sorted set') end\n"
	"if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then\n"
	"  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
	"end\n"
	"return 1\n";

/* KEYS: processing high normal low wake; ARGV: entry */
static const char requeue_lua[] = PRELUDE
	"local sep = string.find(ARGV[1], '|', 1, true)\n"
	"local k = sep and target(string.sub(ARGV[1], 1, sep - 1), KEYS[2], KEYS[3], KEYS[4])\n"
	"if not k then return redis.error_reply('no queue list of the right type to put the entry back on') end\n"
	"if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then\n"
	"  redis.call('LPUSH', k, string.sub(ARGV[1], sep + 1))\n"
	"  if is(KEYS[5], 'zset') then redis.call('ZADD', KEYS[5], 0, 'w') end\n"
	"end\n"
	"return 1\n";

/* Shared body: move every entry of one processing list back to the head of
 * its queue, oldest claim first in line.  An entry without a priority is
 * moved aside, never dropped silently. */
#define RECOVER_FN \
	"local function recover(proc, high, normal, low, garbage)\n" \
	"  local n = 0\n" \
	"  if not is(proc, 'list') then return 0 end\n" \
	"  while true do\n" \
	"    local e = redis.call('LINDEX', proc, -1)\n" \
	"    if not e then break end\n" \
	"    local sep = string.find(e, '|', 1, true)\n" \
	"    if sep then\n" \
	"      local k = target(string.sub(e, 1, sep - 1), high, normal, low)\n" \
	"      if not k then break end\n" \
	"      redis.call('LPUSH', k, string.sub(e, sep + 1))\n" \
	"      n = n + 1\n" \
	"    else\n" \
	"      aside(garbage, e)\n" \
	"    end\n" \
	"    redis.call('RPOP', proc)\n" \
	"  end\n" \
	"  return n\n" \
	"end\n"

/* KEYS: processing:<id> heartbeat:<id> high normal low wake executors garbage;
 * ARGV: id force token
 * Forced (our own list at start), it still leaves alone a list whose
 * heartbeat is another live daemon's: a second daemon started with the same
 * id must not take the first one's running jobs. */
static const char recover_lua[] = PRELUDE RECOVER_FN
	"if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
	"if ARGV[2] == '1' and not owner(KEYS[2], ARGV[3]) then return 0 end\n"
	"local n = recover(KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[8])\n"
	"if n > 0 and is(KEYS[6], 'zset') then redis.call('ZADD', KEYS[6], 0, 'w') end\n"
	"if ARGV[2] ~= '1' and is(KEYS[7], 'set') then redis.call('SREM', KEYS[7], ARGV[1]) end\n"
	"return n\n";

/* KEYS: processing:<id> heartbeat:<id> high normal low wake executors garbage;
 * ARGV: id token
 * A clean exit: put our jobs back, drop our lease and membership, all only
 * while the lease is ours. */
static const char leave_lua[] = PRELUDE RECOVER_FN
	"if not owner(KEYS[2], ARGV[2]) then return 0 end\n"
	"local n = recover(KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[8])\n"
	"if n > 0 and is(KEYS[6], 'zset') then redis.call('ZADD', KEYS[6], 0, 'w') end\n"
	"redis.call('DEL', KEYS[2])\n"
	"if is(KEYS[7], 'set') then redis.call('SREM', KEYS[7], ARGV[1]) end\n"
	"return n\n";

/* KEYS: heartbeat:<id>; ARGV: token doc ttl
 * The executor id is claimed, not assumed: 1 when the lease is now ours,
 * else the value of the lease someone else holds. */
static const char claim_id_lua[] = PRELUDE
	"if not owner(KEYS[1], ARGV[1]) then\n"
	"  if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 'a ' .. redis.call('TYPE', KEYS[1]).ok end\n"
	"  return redis.call('GET', KEYS[1])\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
	"return 1\n";

/* Due retries to their queues; a member without a priority goes aside. */
#define PROMOTE_FN \
	"local function promote(delayed, high, normal, low, wake, garbage, now)\n" \
	"  if not is(delayed, 'zset') then return -1 end\n" \
	"  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)\n" \
	"  local n = 0\n" \
	"  for _, e in ipairs(due) do\n" \
	"    local sep = string.find(e, '|', 1, true)\n" \
	"    if sep then\n" \
	"      local k = target(string.sub(e, 1, sep - 1), high, normal, low)\n" \
	"      if not k then break end\n" \
	"      redis.call('RPUSH', k, string.sub(e, sep + 1))\n" \
	"      n = n + 1\n" \
	"    else\n" \
	"      aside(garbage, e)\n" \
	"    end\n" \
	"    redis.call('ZREM', delayed, e)\n" \
	"  end\n" \
	"  if n > 0 and is(wake, 'zset') then redis.call('ZADD', wake, 0, 'w') end\n" \
	"  local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')\n" \
	"  local due_next = -1\n" \
	"  if nxt[2] then due_next = tonumber(nxt[2]) end\n" \
	"  return due_next\n" \
	"end\n" \
	"local function depth(k, t)\n" \
	"  if not is(k, t) then return 0 end\n" \
	"  if t == 'zset' then return redis.call('ZCARD', k) end\n" \
	"  return redis.call('LLEN', k)\n" \
	"end\n"

/* KEYS: heartbeat executors delayed high normal low wake sweep-lock garbage;
 * ARGV: prefix id doc ttl now may-sweep interval token.
 * One executor an interval sweeps (the lock), so the cost of sweeping stays
 * linear in the number of executors rather than quadratic.  A lease another
 * daemon holds is not overwritten: the reply is then that lease's value.
 * Otherwise: [recovered, next due, depth high, normal, low, delayed, entries
 * moved aside, keys of the wrong type, enqueued_at of the head of high, normal,
 * low ('' when empty or unreadable)].  The heads are read here, not by a
 * command of their own: the oldest-job gauge costs no extra round trip. */
static const char beat_lua[] = PRELUDE RECOVER_FN PROMOTE_FN
	"if not owner(KEYS[1], ARGV[8]) then\n"
	"  if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 'a ' .. redis.call('TYPE', KEYS[1]).ok end\n"
	"  return redis.call('GET', KEYS[1])\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])\n"
	"local execs = is(KEYS[2], 'set')\n"
	"if execs then redis.call('SADD', KEYS[2], ARGV[2]) end\n"
	"local total = 0\n"
	"if execs and ARGV[6] == '1' and is(KEYS[8], 'string') and\n"
	"   redis.call('SET', KEYS[8], ARGV[2], 'NX', 'PX', ARGV[7]) then\n"
	"  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
	"    if redis.call('EXISTS', ARGV[1] .. 'heartbeat:' .. id) == 0 then\n"
	"      total = total + recover(ARGV[1] .. 'processing:' .. id, KEYS[4], KEYS[5], KEYS[6], KEYS[9])\n"
	"      redis.call('SREM', KEYS[2], id)\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if total > 0 and is(KEYS[7], 'zset') then redis.call('ZADD', KEYS[7], 0, 'w') end\n"
	"local due_next = promote(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9], ARGV[5])\n"
	"is(KEYS[7], 'zset')\n"
	"is(ARGV[1] .. 'processing:' .. ARGV[2], 'list')\n"
	"local heads = {}\n"
	"for j = 4, 6 do\n"
	"  local v = is(KEYS[j], 'list') and redis.call('LINDEX', KEYS[j], 0)\n"
	"  local ok, d = pcall(cjson.decode, v or '')\n"
	"  heads[j - 3] = (ok and type(d) == 'table' and type(d.enqueued_at) == 'string') and d.enqueued_at or ''\n"
	"end\n"
	"return {total, due_next, depth(KEYS[4], 'list'), depth(KEYS[5], 'list'), depth(KEYS[6], 'list'),\n"
	"        depth(KEYS[3], 'zset'), moved, bad, heads}\n";

/* KEYS: delayed high normal low wake garbage; ARGV: now
 * Reply: [next due, depth high, normal, low, delayed, entries moved aside,
 * keys of the wrong type]. */
static const char promote_lua[] = PRELUDE PROMOTE_FN
	"local due_next = promote(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1])\n"
	"return {due_next, depth(KEYS[2], 'list'), depth(KEYS[3], 'list'), depth(KEYS[4], 'list'),\n"
	"        depth(KEYS[1], 'zset'), moved, bad}\n";

/* KEYS: high normal low delayed executors wake; ARGV: prefix, then entries
 * "<priority>|<payload>" of jobs PostgreSQL holds QUEUED.  Each that is in
 * no queue, no processing list and not the delayed set is pushed to the tail
 * of its queue.  Returns the 1-based indices of those pushed.  The oldest
 * rows come first and sit near the heads of their queues, where LPOS starts. */
static const char reconcile_lua[] =
	"local execs = redis.call('SMEMBERS', KEYS[5])\n"
	"local pushed = {}\n"
	"for i = 2, #ARGV do\n"
	"  local e = ARGV[i]\n"
	"  local sep = string.find(e, '|', 1, true)\n"
	"  local p, v = string.sub(e, 1, sep - 1), string.sub(e, sep + 1)\n"
	"  local found = redis.call('ZSCORE', KEYS[4], e)\n"
	"  for q = 1, 3 do\n"
	"    if not found then found = redis.call('LPOS', KEYS[q], v) end\n"
	"  end\n"
	"  for _, id in ipairs(execs) do\n"
	"    for _, lp in ipairs({'high', 'normal', 'low'}) do\n"
	"      if not found then found = redis.call('LPOS', ARGV[1] .. 'processing:' .. id, lp .. '|' .. v) end\n"
	"    end\n"
	"  end\n"
	"  if not found then\n"
	"    local k = KEYS[2]\n"
	"    if p == 'high' then k = KEYS[1] elseif p == 'low' then k = KEYS[3] end\n"
	"    redis.call('RPUSH', k, v)\n"
	"    pushed[#pushed + 1] = i - 1\n"
	"  end\n"
	"end\n"
	"if #pushed > 0 then redis.call('ZADD', KEYS[6], 0, 'w') end\n"
	"return pushed\n";

/* ---- URL -------------------------------------------------------------------- */

/* "host[:port]" of LEN bytes at P, port DEF when none: 0 or -1. */
static int parse_hostport(const char *p, size_t len, int def, char **ret_host, int *ret_port)
{
	const char *colon = memchr(p, ':', len);
	long port = def;

	if (colon) {
		char *ps = xstrndup(colon + 1, len - (size_t)(colon + 1 - p));
		int r = parse_int(ps, 1, 65535, &port);

		free(ps);
		if (r < 0)
			return -1;
	}
	*ret_host = xstrndup(p, colon ? (size_t)(colon - p) : len);
	if (!**ret_host) {
		free(*ret_host);
		*ret_host = xstrdup("127.0.0.1");
	}
	*ret_port = (int)port;
	return 0;
}

#define SENTINEL_FORM "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/mastername[/db]" \
	"[?sentinel_user=U&sentinel_password=P]"

/* redis+sentinel://[[user]:password@]h1[:26379],h2[:26379]/master[/db][?opts]
 * The credentials before '@' are the master's (as in redis://); the
 * sentinels' own, where they require any, are the query options. */
static int parse_sentinel(const char *url, struct redis_target *t, char **ret_err)
{
	const char *p = url + strlen("redis+sentinel://"), *slash = strchr(p, '/'), *at, *hosts, *q;
	char *name = NULL, *rest;
	long db = 0;

	if (!slash) {
		*ret_err = xstrdup("TASKEXEC_REDIS_URL: redis+sentinel:// names no master; expected " SENTINEL_FORM);
		return -1;
	}
	at = memrchr(p, '@', (size_t)(slash - p));
	if (at) {
		const char *pc = memchr(p, ':', (size_t)(at - p));

		t->password = pc ? xstrndup(pc + 1, (size_t)(at - pc - 1)) : xstrndup(p, (size_t)(at - p));
		if (pc && pc > p)
			t->user = xstrndup(p, (size_t)(pc - p));
	}
	hosts = at ? at + 1 : p;
	for (const char *h = hosts; h < slash;) {
		const char *comma = memchr(h, ',', (size_t)(slash - h)), *e = comma ? comma : slash;
		char *host;
		int port;

		if (e == h || parse_hostport(h, (size_t)(e - h), 26379, &host, &port) < 0) {
			*ret_err = xasprintf("TASKEXEC_REDIS_URL: bad sentinel address '%.*s' (expected host[:port], "
					     "port 1-65535)", (int)(e - h), h);
			return -1;
		}
		t->sentinel_hosts = xreallocarray(t->sentinel_hosts, (size_t)t->n_sentinels + 2, sizeof(char *));
		t->sentinel_ports = xreallocarray(t->sentinel_ports, (size_t)t->n_sentinels + 1, sizeof(int));
		t->sentinel_hosts[t->n_sentinels] = host;
		t->sentinel_hosts[t->n_sentinels + 1] = NULL;
		t->sentinel_ports[t->n_sentinels++] = port;
		h = comma ? comma + 1 : slash;
	}
	if (!t->n_sentinels) {
		*ret_err = xstrdup("TASKEXEC_REDIS_URL: redis+sentinel:// names no sentinel; expected " SENTINEL_FORM);
		return -1;
	}
	q = strchr(slash, '?');
	rest = q ? xstrndup(slash + 1, (size_t)(q - slash - 1)) : xstrdup(slash + 1);
	{
		char *db_s = strchr(rest, '/');

		if (db_s)
			*db_s++ = '\0';
		name = rest;
		if (!*name) {
			free(rest);
			*ret_err = xstrdup("TASKEXEC_REDIS_URL: redis+sentinel:// names no master; expected " SENTINEL_FORM);
			return -1;
		}
		if (db_s && *db_s && parse_int(db_s, 0, INT_MAX, &db) < 0) {
			*ret_err = xasprintf("TASKEXEC_REDIS_URL: database '%s' is not a number", db_s);
			free(rest);
			return -1;
		}
	}
	t->master_name = xstrdup(name);
	t->db = (int)db;
	free(rest);
	for (q = q ? q + 1 : NULL; q && *q;) {
		const char *amp = strchr(q, '&'), *e = amp ? amp : q + strlen(q), *eq = memchr(q, '=', (size_t)(e - q));
		size_t klen = eq ? (size_t)(eq - q) : (size_t)(e - q);
		char *v = eq ? xstrndup(eq + 1, (size_t)(e - eq - 1)) : NULL;

		if (v && klen == 13 && !strncmp(q, "sentinel_user", klen)) {
			free(t->sentinel_user);
			t->sentinel_user = v;
		} else if (v && klen == 17 && !strncmp(q, "sentinel_password", klen)) {
			free(t->sentinel_password);
			t->sentinel_password = v;
		} else {
			*ret_err = xasprintf("TASKEXEC_REDIS_URL: unknown option '%.*s' (known: sentinel_user=, "
					     "sentinel_password=)", (int)klen, q);
			free(v);
			return -1;
		}
		q = amp ? amp + 1 : e;
	}
	return 0;
}

int redis_url_parse(const char *url, struct redis_target *t, char **ret_err)
{
	long db = 0;

	memset(t, 0, sizeof(*t));
	t->port = 6379;
	if (!strncmp(url, "redis+sentinel://", 17)) {
		if (parse_sentinel(url, t, ret_err) < 0) {
			redis_target_free(t);
			return -1;
		}
		return 0;
	}
	if (!strncmp(url, "unix://", 7)) {
		const char *q = strchr(url + 7, '?');

		t->path = q ? xstrndup(url + 7, (size_t)(q - url - 7)) : xstrdup(url + 7);
		if (q && !strncmp(q, "?db=", 4) && parse_int(q + 4, 0, INT_MAX, &db) < 0)
			goto bad;
		t->db = (int)db;
		return 0;
	}
	if (!strncmp(url, "redis://", 8)) {
		const char *p = url + 8, *at = strchr(p, '@'), *slash, *colon;

		if (at) {
			const char *pc = memchr(p, ':', (size_t)(at - p));

			t->password = pc ? xstrndup(pc + 1, (size_t)(at - pc - 1)) : xstrndup(p, (size_t)(at - p));
			if (pc && pc > p)
				t->user = xstrndup(p, (size_t)(pc - p));         /* Redis 6 ACL user */
			p = at + 1;
		}
		slash = strchr(p, '/');
		colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
		t->host = xstrndup(p, colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p));
		if (colon)
			t->port = atoi(colon + 1);
		/* A database number that is not one would quietly mean 0. */
		if (slash && slash[1] && parse_int(slash + 1, 0, INT_MAX, &db) < 0)
			goto bad;
		t->db = (int)db;
		if (!*t->host) {
			free(t->host);
			t->host = xstrdup("127.0.0.1");
		}
		if (t->port <= 0 || t->port > 65535)
			goto bad;
		return 0;
	}
bad:
	*ret_err = xstrdup("TASKEXEC_REDIS_URL: expected redis://[[user]:password@]host[:port][/db], "
			   "unix:///path[?db=N] or " SENTINEL_FORM);
	redis_target_free(t);
	return -1;
}

void redis_target_free(struct redis_target *t)
{
	free(t->host);
	free(t->path);
	free(t->password);
	free(t->user);
	free(t->master_name);
	for (int i = 0; i < t->n_sentinels; i++)
		free(t->sentinel_hosts[i]);
	free(t->sentinel_hosts);
	free(t->sentinel_ports);
	free(t->sentinel_user);
	free(t->sentinel_password);
	memset(t, 0, sizeof(*t));
}

/* ---- handshake (shared with the command-line tool) --------------------------- */

int redis_handshake_step(const struct redis_target *t, int step, const char **ret_argv, char ret_db[16])
{
	switch (step) {
	case REDIS_HS_AUTH:
		if (!t->password)
			return 0;
		ret_argv[0] = "AUTH";
		if (!t->user) {
			ret_argv[1] = t->password;
			return 2;
		}
		ret_argv[1] = t->user;
		ret_argv[2] = t->password;
		return 3;
	case REDIS_HS_SELECT:
		if (!t->db)
			return 0;
		snprintf(ret_db, 16, "%d", t->db);
		ret_argv[0] = "SELECT";
		ret_argv[1] = ret_db;
		return 2;
	case REDIS_HS_PING:
		ret_argv[0] = "PING";
		return 1;
	case REDIS_HS_ROLE:
		if (!t->master_name)
			return 0;
		ret_argv[0] = "ROLE";
		return 1;
	default:
		return -ENOENT;
	}
}

/* Redis error text, with the password cut out should a server ever echo it. */
static char *scrub(const struct redis_target *t, const char *text)
{
	char *out = xstrdup(text), *at;

	while (t->password && *t->password && (at = strstr(out, t->password)))
		memset(at, '*', strlen(t->password));
	while (t->sentinel_password && *t->sentinel_password && (at = strstr(out, t->sentinel_password)))
		memset(at, '*', strlen(t->sentinel_password));
	out[strcspn(out, "\r\n")] = '\0';
	return out;
}

char *redis_handshake_check(const struct redis_target *t, int step, const redisReply *reply)
{
	char *why, *msg;

	if (step == REDIS_HS_ROLE && reply && reply->type != REDIS_REPLY_ERROR) {
		if (reply->type == REDIS_REPLY_ARRAY && reply->elements && reply->element[0]->type == REDIS_REPLY_STRING &&
		    !strcmp(reply->element[0]->str, "master"))
			return NULL;
		return xasprintf("Redis: %s:%d is not the master of %s (ROLE says %s): asking the sentinels again",
				 t->host, t->port, t->master_name,
				 reply->type == REDIS_REPLY_ARRAY && reply->elements &&
				 reply->element[0]->type == REDIS_REPLY_STRING ? reply->element[0]->str : "nothing usable");
	}
	if (reply && reply->type != REDIS_REPLY_ERROR)
		return NULL;
	why = scrub(t, reply ? reply->str : "no reply");
	if (step == REDIS_HS_AUTH)
		msg = xasprintf("Redis: authentication failed%s%s: %s", t->user ? " for user " : "",
				t->user ? t->user : "", why);
	else if (step == REDIS_HS_SELECT)
		msg = xasprintf("Redis: SELECT %d: %s", t->db, why);
	else if (!strncmp(why, "NOAUTH", 6))
		msg = xasprintf("Redis: authentication required, and TASKEXEC_REDIS_URL carries no password: %s", why);
	else
		msg = xasprintf("Redis: %s", why);
	free(why);
	return msg;
}

int redis_handshake(redisContext *r, const struct redis_target *t, char **ret_err)
{
	for (int step = 0; step < REDIS_HS_N; step++) {
		const char *argv[3];
		char db[16];
		int argc = redis_handshake_step(t, step, argv, db);
		redisReply *reply;
		char *err;

		if (argc <= 0)
			continue;
		reply = redisCommandArgv(r, argc, argv, NULL);
		if (!reply) {
			*ret_err = xasprintf("Redis: %s", r->errstr);
			return -EIO;
		}
		err = redis_handshake_check(t, step, reply);
		freeReplyObject(reply);
		if (err) {
			*ret_err = err;
			return -EACCES;
		}
	}
	return 0;
}

/* ---- Sentinel, blocking (command-line tool) ------------------------------------ */

static redisContext *connect_cloexec(const char *host, int port, struct timeval tv)
{
	redisContext *r = redisConnectWithTimeout(host, port, tv);

	if (r && !r->err) {
		fcntl(r->fd, F_SETFD, FD_CLOEXEC);
		redisSetTimeout(r, tv);
	}
	return r;
}

/* The sentinel's own AUTH, when the URL gives one: 0, or the reason. */
static char *sentinel_auth_check(const struct redis_target *t, const redisReply *reply)
{
	char *why, *msg;

	if (reply && reply->type != REDIS_REPLY_ERROR)
		return NULL;
	why = scrub(t, reply ? reply->str : "no reply");
	msg = xasprintf("authentication failed (sentinel_password): %s", why);
	free(why);
	return msg;
}

int redis_sentinel_resolve(struct redis_target *t, struct timeval tv, char **ret_err)
{
	char *causes = NULL;

	for (int i = 0; i < t->n_sentinels; i++) {
		redisContext *r = connect_cloexec(t->sentinel_hosts[i], t->sentinel_ports[i], tv);
		redisReply *rep = NULL;
		char *why = NULL, *more;

		if (!r || r->err) {
			why = xstrdup(r ? r->errstr : "out of memory");
			goto next;
		}
		if (t->sentinel_password) {
			rep = t->sentinel_user ? redisCommand(r, "AUTH %s %s", t->sentinel_user, t->sentinel_password)
					       : redisCommand(r, "AUTH %s", t->sentinel_password);
			why = rep ? sentinel_auth_check(t, rep) : xstrdup(r->errstr);
			freeReplyObject(rep);
			rep = NULL;
			if (why)
				goto next;
		}
		rep = redisCommand(r, "SENTINEL get-master-addr-by-name %s", t->master_name);
		if (!rep) {
			why = xstrdup(r->errstr);
		} else if (rep->type == REDIS_REPLY_ERROR) {
			why = scrub(t, rep->str);
		} else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
			   rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING) {
			why = xasprintf("does not know a master named %s", t->master_name);
		} else {
			long port;

			if (parse_int(rep->element[1]->str, 1, 65535, &port) < 0) {
				why = xasprintf("answered a bad port '%s'", rep->element[1]->str);
			} else {
				free(t->host);
				t->host = xstrdup(rep->element[0]->str);
				t->port = (int)port;
				freeReplyObject(rep);
				redisFree(r);
				free(causes);
				return 0;
			}
		}
next:
		more = xasprintf("%s%s%s:%d: %s", causes ? causes : "", causes ? "; " : "", t->sentinel_hosts[i],
				 t->sentinel_ports[i], why);
		free(causes);
		causes = more;
		free(why);
		freeReplyObject(rep);
		redisFree(r);
	}
	*ret_err = xasprintf("Redis Sentinel: no sentinel named the master %s (%s)", t->master_name, causes);
	free(causes);
	return -EHOSTUNREACH;
}

static redisContext *connect_blocking_once(struct redis_target *t, struct timeval tv, char **ret_err)
{
	redisContext *r;

	if (t->master_name && redis_sentinel_resolve(t, tv, ret_err) < 0)
		return NULL;
	r = t->path ? redisConnectUnixWithTimeout(t->path, tv) : connect_cloexec(t->host, t->port, tv);
	if (!r || r->err) {
		if (t->master_name)
			*ret_err = xasprintf("Redis: master %s at %s:%d: %s", t->master_name, t->host, t->port,
					     r ? r->errstr : "out of memory");
		else
			*ret_err = xasprintf("Redis: %s", r ? r->errstr : "out of memory");
		redisFree(r);
		return NULL;
	}
	fcntl(r->fd, F_SETFD, FD_CLOEXEC);
	redisSetTimeout(r, tv);
	if (redis_handshake(r, t, ret_err) < 0) {
		redisFree(r);
		return NULL;
	}
	return r;
}

/* Through Sentinel, a master that does not answer or is no master (yet) is
 * a failover in progress: ask again for up to 5 s, so that a command run
 * during one waits for it rather than failing.  A refusal (wrong password,
 * database, master name) is final at once. */
redisContext *redis_connect_blocking(struct redis_target *t, struct timeval tv, char **ret_err)
{
	redisContext *r;

	for (int tries = 1;; tries++) {
		const struct timespec pause = { 0, 500 * 1000000L };

		r = connect_blocking_once(t, tv, ret_err);
		if (r || !t->master_name || tries >= 10 || strstr(*ret_err, "authentication") ||
		    strstr(*ret_err, "SELECT") || strstr(*ret_err, "does not know a master"))
			return r;
		free(*ret_err);
		*ret_err = NULL;
		nanosleep(&pause, NULL);
	}
}

/* ---- loop adapter ----------------------------------------------------------- */

static void on_fd(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct rconn *c = arg;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		redisAsyncHandleRead(c->ac);
	/* the read may have freed the context */
	if (c->ac && (events & EPOLLOUT))
		redisAsyncHandleWrite(c->ac);
}

static void update(struct rconn *c, uint32_t events)
{
	if (events == c->events)
		return;
	if (!c->events)
		loop_add(c->q->loop, c->fd, events, on_fd, c);
	else if (!events)
		loop_del(c->q->loop, c->fd);
	else
		loop_mod(c->q->loop, c->fd, events);
	c->events = events;
}

static void ev_add_read(void *p) { struct rconn *c = p; update(c, c->events | EPOLLIN); }
static void ev_del_read(void *p) { struct rconn *c = p; update(c, c->events & ~(uint32_t)EPOLLIN); }
static void ev_add_write(void *p) { struct rconn *c = p; update(c, c->events | EPOLLOUT); }
static void ev_del_write(void *p) { struct rconn *c = p; update(c, c->events & ~(uint32_t)EPOLLOUT); }
static void ev_cleanup(void *p) { struct rconn *c = p; update(c, 0); }

/* ---- connections ------------------------------------------------------------ */

static void connect_one(struct rconn *c);

static void note_failure(struct queue *q, enum log_level level, const char *event, const char *cause)
{
	if (q->last_cause && !strcmp(q->last_cause, cause))
		return;
	free(q->last_cause);
	q->last_cause = xstrdup(cause);
	log_msg(level, event, "%s", cause);
}

static void on_retry(struct loop *l, void *arg)
{
	struct rconn *c = arg;

	c->retry = NULL;
	connect_one(c);
}

static void sentinel_ask_again(struct queue *q);

static void schedule_reconnect(struct rconn *c)
{
	int64_t cap = c->q->cfg->heartbeat_ms < 5000 ? c->q->cfg->heartbeat_ms : 5000;

	if (c->q->closing || c->retry)
		return;
	/* The master may have moved: the sentinels know where; in a cluster,
	 * the node of the URL does (a MOVED), when the one we moved to is gone. */
	sentinel_ask_again(c->q);
	if (c->q->moved && !c->q->switching &&
	    (c->q->target.port != c->q->seed_port || strcmp(c->q->target.host, c->q->seed_host))) {
		free(c->q->target.host);
		c->q->target.host = xstrdup(c->q->seed_host);
		c->q->target.port = c->q->seed_port;
		free(c->q->master);
		c->q->master = xasprintf("%s:%d", c->q->seed_host, c->q->seed_port);
	}
	/* At most one heartbeat interval between attempts: back within an
	 * interval of Redis, well inside the three intervals the others wait
	 * before sweeping, so a live executor's jobs are not taken for lost. */
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 250;
	if (c->backoff_ms > cap)
		c->backoff_ms = cap;
	c->retry = loop_timer(c->q->loop, now_ms() + c->backoff_ms, on_retry, c);
}

static void on_message(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *c = priv;
	redisReply *reply = r;

	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
		return;
	if (!strcmp(reply->element[0]->str, "message") && c->q->ev->cancel)
		c->q->ev->cancel(c->q->arg, reply->element[2]->str);
}

/* A queue on a Redis that may evict keys or keeps nothing on disk can lose
 * jobs whatever we do: say so at start.  (Managed Redis may refuse CONFIG;
 * then there is nothing to check.) */
static void on_config(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	const char *what = priv;

	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(what, "maxmemory-policy") && strcmp(reply->element[1]->str, "noeviction"))
		log_msg(LOG_WARN, "redis.unsafe", "Redis maxmemory-policy is %s: under memory pressure it may evict "
			"queued jobs; set it to noeviction", reply->element[1]->str);
	if (!strcmp(what, "appendonly") && strcmp(reply->element[1]->str, "yes"))
		redisAsyncCommand(ac, on_config, (void *)"save", "CONFIG GET save");
	if (!strcmp(what, "save") && !*reply->element[1]->str)
		log_msg(LOG_WARN, "redis.unsafe", "Redis keeps nothing on disk (appendonly no, no save points): a "
			"Redis restart loses every queued job; enable appendonly");
}

static void on_ready(struct rconn *c);
static void cluster_redirect(struct queue *q, const char *err);

/* Every reply of the handshake is checked: a wrong password, a database
 * that does not exist or a Redis that wants a password we do not have is
 * named once, and the connection is dropped and tried again later. */
static void on_handshake(redisAsyncContext *ac, void *r, void *priv)
{
	const struct hs_step *h = priv;
	struct rconn *c = h->c;
	int step = h->step;
	char *err;

	if (!r || c->refused)
		return;         /* the connection went: on_disconnected tries again */
	err = redis_handshake_check(&c->q->target, step, r);
	if (err) {
		c->refused = true;
		note_failure(c->q, LOG_ERROR, "redis.refused", err);
		free(err);
		redisAsyncDisconnect(ac);
		return;
	}
	if (step == (c->q->target.master_name ? REDIS_HS_ROLE : REDIS_HS_PING))
		on_ready(c);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;

	if (status != REDIS_OK) {
		char *cause = xasprintf("redis connection failed: %s", ac->errstr);

		note_failure(c->q, LOG_WARN, "redis.down", cause);
		free(cause);
		c->ac = NULL;   /* hiredis frees it */
		schedule_reconnect(c);
		return;
	}
	/* Commands on one connection run in order: the handshake precedes
	 * everything, and the connection counts as up only once all of it
	 * succeeded. */
	c->refused = false;
	for (int step = 0; step < REDIS_HS_N; step++) {
		const char *argv[3];
		char db[16];
		int argc = redis_handshake_step(&c->q->target, step, argv, db);

		if (argc <= 0)
			continue;
		c->hs[step].c = c;
		c->hs[step].step = step;
		redisAsyncCommandArgv(c->ac, on_handshake, &c->hs[step], argc, argv, NULL);
	}
}

static void on_ready(struct rconn *c)
{
	c->connected = true;
	if (c->q->last_cause) {
		log_msg(LOG_INFO, "redis.up", "redis %s connection restored", conn_names[c->kind]);
		free(c->q->last_cause);
		c->q->last_cause = NULL;
	}
	c->backoff_ms = 0;
	if (c->kind == C_SUB)
		redisAsyncCommand(c->ac, on_message, c, "SUBSCRIBE %s", c->q->k_cancel);
	if (c->kind == C_CMD && !c->q->checked_config) {
		c->q->checked_config = true;
		redisAsyncCommand(c->ac, on_config, (void *)"maxmemory-policy", "CONFIG GET maxmemory-policy");
		redisAsyncCommand(c->ac, on_config, (void *)"appendonly", "CONFIG GET appendonly");
	}
	if (c->kind == C_CMD && c->q->ev->state)
		c->q->ev->state(c->q->arg, true);
	if (c->kind == C_CMD && c->q->switch_pending) {
		c->q->switch_pending = false;
		if (c->q->ev->switched)
			c->q->ev->switched(c->q->arg, c->q->master);
	}
	if (c->kind == C_BLOCK && c->q->ev->woken)
		c->q->ev->woken(c->q->arg, false);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;
	bool was = c->connected;

	c->ac = NULL;
	c->connected = false;
	if (c->q->closing)
		return;
	if (!c->refused) {
		char *cause = xasprintf("redis %s connection lost: %s", conn_names[c->kind],
					status == REDIS_OK ? "closed" : ac->errstr);

		note_failure(c->q, LOG_WARN, "redis.down", cause);
		free(cause);
	}
	if (c->kind == C_BLOCK) {
		c->q->waiting = false;
		if (c->q->wait_guard) {
			loop_timer_cancel(c->q->loop, c->q->wait_guard);
			c->q->wait_guard = NULL;
		}
		if (c->q->wait_retry) {
			loop_timer_cancel(c->q->loop, c->q->wait_retry);
			c->q->wait_retry = NULL;
		}
	}
	if (was && c->kind == C_CMD && c->q->ev->state)
		c->q->ev->state(c->q->arg, false);
	schedule_reconnect(c);
}

/* Our loop drives CONN's hiredis context AC: close-on-exec, keepalives. */
static void attach(struct rconn *c, redisAsyncContext *ac, bool tcp)
{
	int one = 1, idle = 15, intvl = 5, cnt = 3;

	c->ac = ac;
	c->fd = ac->c.fd;
	c->events = 0;
	fcntl(c->fd, F_SETFD, FD_CLOEXEC);
	if (tcp) {
		/* A connection that died silently must not hang a blocking call forever. */
		setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
}

static void connect_one(struct rconn *c)
{
	struct queue *q = c->q;
	redisAsyncContext *ac;

	if (q->target.master_name && !q->target.host)
		return;         /* the sentinels have not named the master yet: use_master connects */
	ac = q->target.path ? redisAsyncConnectUnix(q->target.path)
			    : redisAsyncConnect(q->target.host, q->target.port);
	if (!ac || ac->err) {
		char *cause = xasprintf("redis connection failed: %s", ac ? ac->errstr : "out of memory");

		note_failure(q, LOG_WARN, "redis.down", cause);
		free(cause);
		if (ac)
			redisAsyncFree(ac);
		schedule_reconnect(c);
		return;
	}
	attach(c, ac, !q->target.path);
	redisAsyncSetConnectCallback(ac, on_connected);
	redisAsyncSetDisconnectCallback(ac, on_disconnected);
	/* hiredis 0.14 only reports the connect once the socket is writable. */
	ev_add_write(c);
}

/* ---- Sentinel, in the loop (daemon) ----------------------------------------------- */

static void sentinel_connect(struct queue *q);

/* The data connections move to HOST:PORT at once; a move (not the first
 * answer) is a failover, reported to the daemon once the command connection
 * is up on the new master. */
static void use_master(struct queue *q, const char *host, int port, const char *via)
{
	char *addr = xasprintf("%s:%d", host, port);

	if (q->master && !strcmp(q->master, addr)) {
		free(addr);
		return;
	}
	if (q->master)
		log_json(LOG_WARN, "redis.master_changed",
			 json_pack("{s:s?, s:s, s:s, s:s, s:s}", "name", q->target.master_name, "from", q->master, "to",
				   addr, "via", via, "msg", "Redis master changed: reconnecting, then reconciling"));
	else
		log_json(LOG_INFO, "redis.master", json_pack("{s:s?, s:s, s:s}", "name", q->target.master_name, "master",
							     addr, "msg", "using the master the sentinels name"));
	q->switch_pending = q->master != NULL;
	free(q->master);
	q->master = addr;
	free(q->target.host);
	q->target.host = xstrdup(host);
	q->target.port = port;
	q->switching = true;
	for (int i = 0; i < C_N; i++) {
		struct rconn *c = &q->c[i];

		if (c->ac) {
			/* A connected context reports its end (on_disconnected); one
			 * still connecting goes without a word. */
			redisAsyncFree(c->ac);
			c->ac = NULL;
			c->connected = false;
		}
		if (c->retry) {
			loop_timer_cancel(q->loop, c->retry);
			c->retry = NULL;
		}
		c->backoff_ms = 0;
		connect_one(c);
	}
	q->switching = false;
}

static void on_sentinel_retry(struct loop *l, void *arg)
{
	struct queue *q = arg;

	q->sentinel.retry = NULL;
	sentinel_connect(q);
}

/* This sentinel failed: the next one, after a pause (250 ms doubling to 2 s). */
static void sentinel_next(struct queue *q, const char *why)
{
	struct rconn *c = &q->sentinel;
	int i = q->sentinel_idx;
	char *cause = xasprintf("Redis Sentinel %s:%d: %s", q->target.sentinel_hosts[i], q->target.sentinel_ports[i],
				why);

	note_failure(q, LOG_WARN, "redis.sentinel_down", cause);
	free(cause);
	q->sentinel_idx = (i + 1) % q->target.n_sentinels;
	if (q->closing || c->retry)
		return;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 250;
	if (c->backoff_ms > 2000)
		c->backoff_ms = 2000;
	c->retry = loop_timer(q->loop, now_ms() + c->backoff_ms, on_sentinel_retry, q);
}

static void on_switch_master(redisAsyncContext *ac, void *r, void *priv)
{
	struct queue *q = priv;
	const redisReply *reply = r;
	char name[256], oldip[256], newip[256];
	int oldport, newport;

	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "message") ||
	    reply->element[2]->type != REDIS_REPLY_STRING)
		return;
	/* "<name> <old ip> <old port> <new ip> <new port>" */
	if (sscanf(reply->element[2]->str, "%255s %255s %d %255s %d", name, oldip, &oldport, newip, &newport) == 5 &&
	    !strcmp(name, q->target.master_name) && newport > 0 && newport <= 65535)
		use_master(q, newip, newport, "+switch-master");
}

static void on_sentinel_master(redisAsyncContext *ac, void *r, void *priv)
{
	struct queue *q = priv;
	const redisReply *reply = r;
	long port;

	if (!reply)
		return;         /* the connection went: on_sentinel_disconnected */
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING || parse_int(reply->element[1]->str, 1, 65535, &port) < 0) {
		char *why = reply->type == REDIS_REPLY_ERROR ? scrub(&q->target, reply->str)
							     : xasprintf("knows no master named %s", q->target.master_name);

		sentinel_next(q, why);
		free(why);
		redisAsyncDisconnect(ac);
		return;
	}
	q->sentinel.backoff_ms = 0;
	q->sentinel_subscribed = true;
	redisAsyncCommand(ac, on_switch_master, q, "SUBSCRIBE +switch-master");
	use_master(q, reply->element[0]->str, (int)port, "sentinel");
}

static void on_sentinel_auth(redisAsyncContext *ac, void *r, void *priv)
{
	struct queue *q = priv;
	char *why;

	if (!r)
		return;
	why = sentinel_auth_check(&q->target, r);
	if (why) {
		q->sentinel.refused = true;
		sentinel_next(q, why);
		free(why);
		redisAsyncDisconnect(ac);
	}
}

static void on_sentinel_connected(const redisAsyncContext *ac, int status)
{
	struct queue *q = ((struct rconn *)ac->data)->q;
	redisAsyncContext *a = q->sentinel.ac;

	if (status != REDIS_OK) {
		q->sentinel.ac = NULL;  /* hiredis frees it */
		sentinel_next(q, ac->errstr);
		return;
	}
	q->sentinel.refused = false;
	if (q->target.sentinel_password) {
		if (q->target.sentinel_user)
			redisAsyncCommand(a, on_sentinel_auth, q, "AUTH %s %s", q->target.sentinel_user,
					  q->target.sentinel_password);
		else
			redisAsyncCommand(a, on_sentinel_auth, q, "AUTH %s", q->target.sentinel_password);
	}
	redisAsyncCommand(a, on_sentinel_master, q, "SENTINEL get-master-addr-by-name %s", q->target.master_name);
}

static void on_sentinel_disconnected(const redisAsyncContext *ac, int status)
{
	struct queue *q = ((struct rconn *)ac->data)->q;
	bool again = q->sentinel_again, refused = q->sentinel.refused;

	q->sentinel.ac = NULL;
	q->sentinel_subscribed = false;
	q->sentinel_again = false;
	if (q->closing)
		return;
	if (again) {
		sentinel_connect(q);    /* asked to ask again: the same sentinel, at once */
		return;
	}
	if (!refused && !q->sentinel.retry)
		sentinel_next(q, status == REDIS_OK ? "closed" : ac->errstr);
}

static void sentinel_connect(struct queue *q)
{
	struct rconn *c = &q->sentinel;
	int i = q->sentinel_idx;
	redisAsyncContext *ac = redisAsyncConnect(q->target.sentinel_hosts[i], q->target.sentinel_ports[i]);

	if (!ac || ac->err) {
		sentinel_next(q, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return;
	}
	attach(c, ac, true);
	redisAsyncSetConnectCallback(ac, on_sentinel_connected);
	redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnected);
	ev_add_write(c);
}

/* A data connection failed or a write met READONLY: ask the sentinels again
 * (at most once a second), besides waiting for +switch-master. */
static void sentinel_ask_again(struct queue *q)
{
	if (!q->target.master_name || q->closing || q->switching || !q->sentinel_subscribed ||
	    now_ms() - q->sentinel_asked_at < 1000)
		return;
	q->sentinel_asked_at = now_ms();
	q->sentinel_again = true;
	redisAsyncDisconnect(q->sentinel.ac);
}

struct queue *queue_new(struct loop *l, const struct config *cfg, const struct queue_events *ev, void *arg)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	const char *p = cfg->queue_prefix, *id = cfg->executor_id;
	char *err = NULL;

	if (redis_url_parse(cfg->redis_url, &q->target, &err) < 0) {
		log_msg(LOG_ERROR, "config.invalid", "%s", err);
		free(err);
		free(q);
		return NULL;
	}
	q->loop = l;
	q->cfg = cfg;
	q->ev = ev;
	q->arg = arg;
	q->prefix_tag = xasprintf("{%s}:", p);
	q->k_high = xasprintf("{%s}:queue:high", p);
	q->k_normal = xasprintf("{%s}:queue:normal", p);
	q->k_low = xasprintf("{%s}:queue:low", p);
	q->k_wake = xasprintf("{%s}:wake", p);
	q->k_delayed = xasprintf("{%s}:delayed", p);
	q->k_proc = xasprintf("{%s}:processing:%s", p, id);
	q->k_execs = xasprintf("{%s}:executors", p);
	q->k_hb = xasprintf("{%s}:heartbeat:%s", p, id);
	q->k_cancel = xasprintf("{%s}:cancel", p);
	q->k_sweep = xasprintf("{%s}:sweep", p);
	q->k_reconcile = xasprintf("{%s}:reconcile", p);
	q->k_reconcile_switch = xasprintf("{%s}:reconcile:switch", p);
	q->k_garbage = xasprintf("{%s}:garbage", p);
	random_hex(q->token, sizeof(q->token));
	if (!q->target.master_name)
		q->master = q->target.path ? xstrdup(q->target.path) : xasprintf("%s:%d", q->target.host, q->target.port);
	for (int i = 0; i < C_N; i++) {
		q->c[i].q = q;
		q->c[i].kind = i;
		connect_one(&q->c[i]);
	}
	q->sentinel.q = q;
	q->sentinel.kind = C_SENTINEL;
	if (q->target.master_name)
		sentinel_connect(q);
	return q;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	q->closing = true;
	if (q->wait_guard)
		loop_timer_cancel(q->loop, q->wait_guard);
	if (q->wait_retry)
		loop_timer_cancel(q->loop, q->wait_retry);
	for (int i = 0; i < C_N; i++) {
		if (q->c[i].retry)
			loop_timer_cancel(q->loop, q->c[i].retry);
		if (q->c[i].ac)
			redisAsyncFree(q->c[i].ac);
	}
	if (q->sentinel.retry)
		loop_timer_cancel(q->loop, q->sentinel.retry);
	if (q->move_timer)
		loop_timer_cancel(q->loop, q->move_timer);
	free(q->moved_host);
	free(q->seed_host);
	if (q->sentinel.ac)
		redisAsyncFree(q->sentinel.ac);
	free(q->master);
	redis_target_free(&q->target);
	free(q->prefix_tag);
	free(q->k_high);
	free(q->k_normal);
	free(q->k_low);
	free(q->k_wake);
	free(q->k_delayed);
	free(q->k_proc);
	free(q->k_execs);
	free(q->k_hb);
	free(q->k_cancel);
	free(q->k_sweep);
	free(q->k_reconcile);
	free(q->k_reconcile_switch);
	free(q->k_garbage);
	free(q->last_cause);
	free(q);
}

const char *queue_master(const struct queue *q)
{
	return q->master;
}

bool queue_up(const struct queue *q)
{
	return q->c[C_CMD].connected;
}

const char *queue_last_error(const struct queue *q)
{
	return q->c[C_CMD].connected ? NULL : q->last_cause;
}

/* ---- Redis Cluster ----------------------------------------------------------- */

static void on_move(struct loop *l, void *arg)
{
	struct queue *q = arg;
	char *host = q->moved_host;

	q->move_timer = NULL;
	q->moved_host = NULL;
	if (!host || q->closing)
		goto out;
	if (!q->moved) {
		q->seed_host = xstrdup(q->target.host);
		q->seed_port = q->target.port;
		q->moved = true;
	}
	use_master(q, host, q->moved_port, "MOVED");
out:
	free(host);
}

/* Every key shares one hash slot, so one node owns them all: a MOVED names
 * it, and every connection moves there.  ASK (the slot is being migrated)
 * is not followed command by command: the step is tried again, as after
 * any failure, until the migration ends and MOVED names the new owner. */
static void cluster_redirect(struct queue *q, const char *err)
{
	char host[256];
	int slot, port;

	if (q->target.master_name || q->target.path || q->closing)
		return;
	if (!strncmp(err, "ASK ", 4)) {
		log_msg(LOG_WARN, "redis.ask", "redis: our hash slot is being migrated (%s): trying again", err);
		return;
	}
	if (strncmp(err, "MOVED ", 6) || sscanf(err + 6, "%d %255[^:]:%d", &slot, host, &port) != 3 || port <= 0 ||
	    port > 65535 || q->move_timer)
		return;
	q->moved_host = xstrdup(host);
	q->moved_port = port;
	q->move_timer = loop_timer(q->loop, now_ms(), on_move, q);
}

/* ---- commands --------------------------------------------------------------- */

struct call {
	queue_cb cb;
	void *arg;
};

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct call *call = priv;
	redisReply *reply = r;

	if (reply && reply->type == REDIS_REPLY_ERROR) {
		log_msg(LOG_ERROR, "redis.error", "redis: %s", reply->str);
		/* A replica now (a failover we have not heard of, a master demoted
		 * by hand): drop the connection; reconnecting asks the sentinels. */
		if (!strncmp(reply->str, "READONLY", 8) && ac->c.flags & REDIS_CONNECTED)
			redisAsyncDisconnect(ac);
		cluster_redirect(((struct rconn *)ac->data)->q, reply->str);
		reply = NULL;
	}
	if (call->cb)
		call->cb(call->arg, reply);
	free(call);
}

static int send_argv(struct queue *q, queue_cb cb, void *arg, int argc, const char **argv, const size_t *lens)
{
	struct rconn *c = &q->c[C_CMD];
	struct call *call;

	if (!c->connected)
		return -ENOTCONN;
	call = xmalloc(sizeof(*call));
	call->cb = cb;
	call->arg = arg;
	if (redisAsyncCommandArgv(c->ac, on_reply, call, argc, argv, lens) != REDIS_OK) {
		free(call);
		return -EIO;
	}
	return 0;
}

/* EVAL script with keys and args (NUL-terminated unless lengths are given). */
static int eval(struct queue *q, queue_cb cb, void *arg, const char *script, int nkeys, const char **keys,
		int nargs, const char **args, const size_t *arglens)
{
	const char *argv[24];
	size_t lens[24];
	char nk[16];
	int n = 0;

	if (3 + nkeys + nargs > (int)ARRAY_SIZE(argv))
		abort();        /* a programming error: the scripts here are fixed */
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[n] = "EVAL", lens[n++] = 4;
	argv[n] = script, lens[n++] = strlen(script);
	argv[n] = nk, lens[n++] = strlen(nk);
	for (int i = 0; i < nkeys; i++)
		argv[n] = keys[i], lens[n++] = strlen(keys[i]);
	for (int i = 0; i < nargs; i++)
		argv[n] = args[i], lens[n++] = arglens ? arglens[i] : strlen(args[i]);
	return send_argv(q, cb, arg, n, argv, lens);
}

int queue_claim(struct queue *q, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_high, q->k_normal, q->k_low, q->k_proc, q->k_wake, q->k_execs };
	const char *args[] = { q->cfg->executor_id };

	return eval(q, cb, arg, claim_lua, 6, keys, 1, args, NULL);
}

static void on_wait_retry(struct loop *l, void *arg)
{
	struct queue *q = arg;

	q->wait_retry = NULL;
	q->waiting = false;
	if (!q->closing && q->ev->woken)
		q->ev->woken(q->arg, false);
}

static void on_woken(redisAsyncContext *ac, void *r, void *priv)
{
	struct queue *q = priv;
	const redisReply *reply = r;

	if (q->wait_guard) {
		loop_timer_cancel(q->loop, q->wait_guard);
		q->wait_guard = NULL;
	}
	/* A wake marker of the wrong type fails the wait at once; waiting again
	 * at once would spin.  Sit out the bound instead (the heartbeat reports
	 * the key and claims while jobs wait). */
	if (reply && reply->type == REDIS_REPLY_ERROR && !q->closing) {
		cluster_redirect(q, reply->str);
		q->wait_retry = loop_timer(q->loop, now_ms() + q->wait_ms, on_wait_retry, q);
		return;
	}
	q->waiting = false;
	if (!q->closing && reply && q->ev->woken)
		q->ev->woken(q->arg, reply->type == REDIS_REPLY_ARRAY);
}

static void on_wait_guard(struct loop *l, void *arg)
{
	struct queue *q = arg;

	q->wait_guard = NULL;
	log_msg(LOG_WARN, "redis.down", "redis blocking wait overran its bound; reconnecting");
	if (q->c[C_BLOCK].ac)
		redisAsyncFree(q->c[C_BLOCK].ac);
}

void queue_wait(struct queue *q, int64_t timeout_ms)
{
	struct rconn *c = &q->c[C_BLOCK];
	char secs[32];

	if (q->waiting || !c->connected)
		return;
	if (timeout_ms < 10)
		timeout_ms = 10;
	snprintf(secs, sizeof(secs), "%.3f", (double)timeout_ms / 1000.0);
	if (redisAsyncCommand(c->ac, on_woken, q, "BZPOPMIN %s %s", q->k_wake, secs) != REDIS_OK)
		return;
	q->waiting = true;
	q->wait_ms = timeout_ms;
	/* Never wait on a reply that cannot come: past its bound the connection is dead. */
	q->wait_guard = loop_timer(q->loop, now_ms() + timeout_ms + 2 * q->cfg->heartbeat_ms + 1000,
				   on_wait_guard, q);
}

int queue_ack(struct queue *q, const char *entry, size_t len, queue_cb cb, void *arg)
{
	const char *argv[] = { "LREM", q->k_proc, "1", entry };
	size_t lens[] = { 4, strlen(q->k_proc), 1, len };

	return send_argv(q, cb, arg, 4, argv, lens);
}

int queue_delay(struct queue *q, const char *entry, size_t len, int64_t due_ms, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_proc, q->k_delayed };
	char due[32];
	const char *args[] = { entry, due };
	size_t lens[2];

	snprintf(due, sizeof(due), "%lld", (long long)due_ms);
	lens[0] = len;
	lens[1] = strlen(due);
	return eval(q, cb, arg, delay_lua, 2, keys, 2, args, lens);
}

int queue_requeue(struct queue *q, const char *entry, size_t len, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_proc, q->k_high, q->k_normal, q->k_low, q->k_wake };
	const char *args[] = { entry };

	return eval(q, cb, arg, requeue_lua, 5, keys, 1, args, &len);
}

int queue_recover(struct queue *q, const char *executor, bool force, queue_cb cb, void *arg)
{
	char *proc = xasprintf("%sprocessing:%s", q->prefix_tag, executor);
	char *hb = xasprintf("%sheartbeat:%s", q->prefix_tag, executor);
	const char *keys[] = { proc, hb, q->k_high, q->k_normal, q->k_low, q->k_wake, q->k_execs, q->k_garbage };
	const char *args[] = { executor, force ? "1" : "0", q->token };
	int r = eval(q, cb, arg, recover_lua, 8, keys, 3, args, NULL);

	free(proc);
	free(hb);
	return r;
}

int queue_promote(struct queue *q, int64_t now, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_delayed, q->k_high, q->k_normal, q->k_low, q->k_wake, q->k_garbage };
	char t[32];
	const char *args[] = { t };

	snprintf(t, sizeof(t), "%lld", (long long)now);
	return eval(q, cb, arg, promote_lua, 6, keys, 1, args, NULL);
}

int queue_beat(struct queue *q, const char *doc, int64_t now, bool may_sweep, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_hb, q->k_execs, q->k_delayed, q->k_high, q->k_normal, q->k_low, q->k_wake,
			       q->k_sweep, q->k_garbage };
	char ttl[32], t[32], iv[32];
	const char *args[] = { q->prefix_tag, q->cfg->executor_id, doc, ttl, t, may_sweep ? "1" : "0", iv, q->token };

	snprintf(ttl, sizeof(ttl), "%lld", (long long)(3 * q->cfg->heartbeat_ms));
	snprintf(t, sizeof(t), "%lld", (long long)now);
	snprintf(iv, sizeof(iv), "%lld", (long long)q->cfg->heartbeat_ms);
	return eval(q, cb, arg, beat_lua, 9, keys, 8, args, NULL);
}

int queue_claim_id(struct queue *q, const char *doc, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_hb };
	char ttl[32];
	const char *args[] = { q->token, doc, ttl };

	snprintf(ttl, sizeof(ttl), "%lld", (long long)(3 * q->cfg->heartbeat_ms));
	return eval(q, cb, arg, claim_id_lua, 1, keys, 3, args, NULL);
}

const char *queue_token(const struct queue *q)
{
	return q->token;
}

int queue_reconcile_lock(struct queue *q, int64_t period_ms, bool switched, queue_cb cb, void *arg)
{
	char px[32];
	const char *argv[] = { "SET", switched ? q->k_reconcile_switch : q->k_reconcile, q->cfg->executor_id, "NX",
			       "PX", px };

	snprintf(px, sizeof(px), "%lld", (long long)period_ms);
	return send_argv(q, cb, arg, ARRAY_SIZE(argv), argv, NULL);
}

int queue_reconcile(struct queue *q, char *const *entries, int n, queue_cb cb, void *arg)
{
	int argc = 3 + 6 + 1 + n, k = 0, r;
	const char **argv = xcalloc((size_t)argc, sizeof(*argv));

	argv[k++] = "EVAL";
	argv[k++] = reconcile_lua;
	argv[k++] = "6";
	argv[k++] = q->k_high;
	argv[k++] = q->k_normal;
	argv[k++] = q->k_low;
	argv[k++] = q->k_delayed;
	argv[k++] = q->k_execs;
	argv[k++] = q->k_wake;
	argv[k++] = q->prefix_tag;
	for (int i = 0; i < n; i++)
		argv[k++] = entries[i];
	r = send_argv(q, cb, arg, argc, argv, NULL);
	free(argv);
	return r;
}

int queue_ping(struct queue *q, queue_cb cb, void *arg)
{
	const char *argv[] = { "PING" };

	return send_argv(q, cb, arg, 1, argv, NULL);
}

int queue_leave(struct queue *q, queue_cb cb, void *arg)
{
	const char *keys[] = { q->k_proc, q->k_hb, q->k_high, q->k_normal, q->k_low, q->k_wake, q->k_execs,
			       q->k_garbage };
	const char *args[] = { q->cfg->executor_id, q->token };

	return eval(q, cb, arg, leave_lua, 8, keys, 2, args, NULL);
}

int queue_entry_split(const char *entry, size_t len, const char **ret_prio, size_t *ret_prio_len,
		      const char **ret_payload, size_t *ret_payload_len)
{
	const char *bar = memchr(entry, '|', len);

	if (!bar)
		return -EINVAL;
	*ret_prio = entry;
	*ret_prio_len = (size_t)(bar - entry);
	*ret_payload = bar + 1;
	*ret_payload_len = len - (size_t)(bar - entry) - 1;
	return 0;
}
