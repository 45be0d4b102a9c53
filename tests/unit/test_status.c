/*
 * test_status.c: the status JSON and the metrics text (pool/status.h) from snapshots in plain
 * structs: every section and field the page reads, a hostile job name kept as the same text (the
 * page shows it with textContent), bytes that are not UTF-8 replaced instead of emptying the
 * answer, the truncation flags, and the metrics families (one HELP and TYPE each, _total on
 * counters only, the histograms' buckets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pool/status.h"

static const char *const states[STATUS_JOB_STATES] = {"staging", "publishing", "rejected", "running",
                                                       "done",    "failed",     "cancelled"};

static status_snap_t base(void)
{
    status_snap_t s = {.now_ms = 5000, .started_ms = 1000, .host = "box", .key = "ab12", .http_url = "http://127.0.0.1:7650",
                       .pool_name = "default", .slots = 4, .running_here = 1, .pool_peers = 2};
    memcpy(s.job_state_names, states, sizeof(states));
    return s;
}

static json_t *parse(const status_snap_t *s)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(status_json(s, &text, &len), 0);
    assert_int_equal(len, strlen(text));
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);
    if (!j)
        fail_msg("not JSON: %s: %s", err.text, text);
    free(text);
    return j;
}

static const char *str(json_t *o, const char *path_a, const char *path_b)
{
    json_t *v = json_object_get(o, path_a);
    if (path_b)
        v = json_object_get(v, path_b);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t num(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void json_has_every_section(void **state)
{
    (void)state;
    status_snap_t s = base();
    s.jobs_by_state[3] = 2;
    s.jobs_by_state[4] = 1;
    s.tasks_by_state[TASK_RUNNING] = 3;
    s.tasks_ok = 7;
    s.leases_given = 2;
    s.leases_held = 1;
    s.bytes_in = 1u << 20;
    s.rate_in = 2048.5;
    s.bad_blocks = 3;
    s.cache_quota = 1ull << 40;
    s.loop_busy_max_ns = 2500000;
    s.requests_over_budget = 5;
    s.conns_refused_per_host = 250;
    s.conns_timed_out = 40;
    s.requests_too_large = 3;
    s.transfers_too_slow = 1;
    status_task_t tasks[3] = {
        {.index = 0, .state = TASK_SUCCEEDED, .attempts = 1, .worker = "ab12", .here = true, .ms = 40, .has_exit = true},
        {.index = 1, .state = TASK_RUNNING, .attempts = 1, .worker = "cd34", .worker_url = "http://10.0.0.2:7650", .ms = 900},
        {.index = 2, .state = TASK_FAILED, .attempts = 3, .ms = -1, .has_exit = true, .exit_code = 3, .reason = "exit 3"},
    };
    status_job_t jobs[2] = {
        {.name = "sweep", .id = "00ff", .state = "running", .submitter = "ab12", .listed = true,
         .counts = {.total = 4, .running = 1, .succeeded = 1, .failed = 1, .waiting = 1}, .results = 2, .tasks = tasks,
         .n_tasks = 3, .tasks_truncated = true},
        {.name = "copying", .state = "staging", .listed = true},
    };
    status_peer_t peers[1] = {{.url = "http://10.0.0.2:7650", .pool = true, .rate_in = 1e6, .bytes_in = 5, .score = -5,
                               .banned = true}};
    status_event_t ev[1] = {{.ms = 4000, .level = "warn", .text = "job sweep task 2 failed"}};
    s.jobs = jobs;
    s.n_jobs = 2;
    s.jobs_total = 3;
    s.peers = peers;
    s.n_peers = 1;
    s.peers_total = 1;
    s.events = ev;
    s.n_events = 1;
    json_t *j = parse(&s);
    assert_int_equal(num(j, "version", NULL), 1);
    assert_string_equal(str(j, "peer", "host"), "box");
    assert_string_equal(str(j, "peer", "key"), "ab12");
    assert_int_equal(num(j, "peer", "slots"), 4);
    assert_int_equal(num(j, "pool", "peers"), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "pool"), "jobs"), "running")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "pool"), "tasks"), "running")), 3);
    assert_int_equal(num(j, "pool", "leases_given"), 2);
    assert_int_equal(num(j, "pool", "leases_held"), 1);
    assert_int_equal(num(j, "transfer", "bytes_in"), 1 << 20);
    assert_int_equal(num(j, "transfer", "bad_blocks"), 3);
    assert_true(json_real_value(json_object_get(json_object_get(j, "transfer"), "rate_in")) == 2048.5);
    assert_int_equal(num(j, "cache", "quota"), 1ll << 40);
    assert_true(json_real_value(json_object_get(json_object_get(j, "loop"), "busy_max_ms")) == 2.5);
    /* the slow and flooding peers cut off, by limit */
    assert_int_equal(num(j, "cut_off", "requests_over_budget"), 5);
    assert_int_equal(num(j, "cut_off", "connections_refused_per_host"), 250);
    assert_int_equal(num(j, "cut_off", "connections_timed_out"), 40);
    assert_int_equal(num(j, "cut_off", "requests_too_large"), 3);
    assert_int_equal(num(j, "cut_off", "transfers_too_slow"), 1);
    /* jobs: counts, progress, tasks with state, worker, time, exit, reason */
    json_t *ja = json_object_get(j, "jobs");
    assert_int_equal(json_array_size(ja), 2);
    assert_true(json_is_true(json_object_get(j, "jobs_truncated"))); /* 2 of 3 */
    json_t *j0 = json_array_get(ja, 0);
    assert_string_equal(str(j0, "name", NULL), "sweep");
    assert_string_equal(str(j0, "origin", NULL), "here");
    assert_int_equal(num(j0, "counts", "total"), 4);
    assert_true(json_real_value(json_object_get(j0, "progress")) == 0.5);
    assert_true(json_is_true(json_object_get(j0, "tasks_truncated")));
    json_t *t = json_object_get(j0, "tasks");
    assert_int_equal(json_array_size(t), 3);
    assert_string_equal(str(json_array_get(t, 0), "state", NULL), "succeeded");
    assert_true(json_is_true(json_object_get(json_array_get(t, 0), "here")));
    assert_int_equal(num(json_array_get(t, 0), "ms", NULL), 40);
    assert_int_equal(num(json_array_get(t, 0), "exit", NULL), 0);
    assert_string_equal(str(json_array_get(t, 1), "worker_url", NULL), "http://10.0.0.2:7650");
    assert_null(json_object_get(json_array_get(t, 1), "exit")); /* no exit code while it runs */
    assert_true(json_is_null(json_object_get(json_array_get(t, 2), "ms")));   /* not known */
    assert_true(json_is_null(json_object_get(json_array_get(t, 2), "worker")));
    assert_string_equal(str(json_array_get(t, 2), "reason", NULL), "exit 3");
    assert_int_equal(num(json_array_get(t, 2), "attempts", NULL), 3);
    json_t *j1 = json_array_get(ja, 1); /* not published: no id, no progress to speak of */
    assert_true(json_is_null(json_object_get(j1, "id")));
    assert_true(json_real_value(json_object_get(j1, "progress")) == 0);
    assert_int_equal(json_array_size(json_object_get(j1, "tasks")), 0);
    /* peers, events, limits */
    json_t *p = json_array_get(json_object_get(j, "peers"), 0);
    assert_true(json_is_true(json_object_get(p, "banned")));
    assert_int_equal(num(p, "score", NULL), -5);
    assert_true(json_is_false(json_object_get(j, "peers_truncated")));
    json_t *e = json_array_get(json_object_get(j, "events"), 0);
    assert_string_equal(str(e, "level", NULL), "warn");
    assert_int_equal(num(e, "ms", NULL), 4000);
    assert_int_equal(num(j, "limits", "tasks_per_job"), STATUS_MAX_TASKS);
    json_decref(j);
}

static void json_names_are_text(void **state)
{
    (void)state;
    status_snap_t s = base();
    const char *hostile = "<img src=x onerror=\"alert(1)\">&amp;</script>";
    status_job_t jobs[2] = {{.name = hostile, .state = "running", .reason = "\"quoted\"\n<b>"},
                            {.name = "caf\xc3\xa9 \xff\xfe bad \xed\xa0\x80 end", .state = "done", .remote = true,
                             .from = "http://10.0.0.3:7650"}};
    status_event_t ev[1] = {{.ms = 1, .level = "info", .text = "cut in the middle \xe2\x82"}};
    s.jobs = jobs;
    s.n_jobs = s.jobs_total = 2;
    s.events = ev;
    s.n_events = 1;
    json_t *j = parse(&s);
    json_t *ja = json_object_get(j, "jobs");
    /* the same characters, as data: the page puts them in with textContent */
    assert_string_equal(str(json_array_get(ja, 0), "name", NULL), hostile);
    assert_string_equal(str(json_array_get(ja, 0), "reason", NULL), "\"quoted\"\n<b>");
    /* bytes that are not UTF-8 (a bad byte, a surrogate): U+FFFD each, the rest kept */
    assert_string_equal(str(json_array_get(ja, 1), "name", NULL),
                        "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    assert_string_equal(str(json_array_get(ja, 1), "origin", NULL), "remote");
    assert_string_equal(str(json_array_get(ja, 1), "from", NULL), "http://10.0.0.3:7650");
    assert_string_equal(str(json_array_get(json_object_get(j, "events"), 0), "text", NULL),
                        "cut in the middle \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
}

static bool odd(uint32_t t, void *arg)
{
    (*(unsigned *)arg)++;
    return t % 2 == 1;
}

/* Which tasks a job lists: its running and failed ones first, then the lowest others. */
static void pick_tasks_running_and_failed_first(void **state)
{
    (void)state;
    uint32_t out[8];
    /* running 70 and 12, failed 12 (again) and 55, one out of range: then 0, 1, 2... up to cap 6 */
    uint32_t first[] = {70, 12, 12, 55, 500};
    size_t n = status_pick_tasks(first, 5, 100, NULL, NULL, UINT32_MAX, NULL, out, 6);
    assert_int_equal(n, 6);
    const uint32_t want[] = {0, 1, 2, 12, 55, 70};
    assert_memory_equal(out, want, sizeof(want));
    /* more running than the cap: the lowest of them */
    uint32_t many[] = {9, 3, 7, 5, 1};
    n = status_pick_tasks(many, 5, 10, NULL, NULL, UINT32_MAX, NULL, out, 3);
    const uint32_t want2[] = {1, 3, 5};
    assert_int_equal(n, 3);
    assert_memory_equal(out, want2, sizeof(want2));
    /* a small job: every task once, the chosen ones not twice */
    uint32_t two[] = {2, 0};
    n = status_pick_tasks(two, 2, 4, NULL, NULL, UINT32_MAX, NULL, out, 8);
    const uint32_t want3[] = {0, 1, 2, 3};
    assert_int_equal(n, 4);
    assert_memory_equal(out, want3, sizeof(want3));
    /* nothing to list */
    assert_int_equal(status_pick_tasks(NULL, 0, 0, NULL, NULL, UINT32_MAX, NULL, out, 8), 0);
    assert_int_equal(status_pick_tasks(two, 2, 4, NULL, NULL, UINT32_MAX, NULL, out, 0), 0);
}

/* Another peer's job: the tasks whose result is here, and the walk stops once all are seen. */
static void pick_tasks_with_a_filter_stops_early(void **state)
{
    (void)state;
    uint32_t out[8];
    unsigned calls = 0;
    uint32_t running[] = {40};
    /* odd indices have a result; 3 of them are known to be here: 1, 3, 5 then stop */
    size_t n = status_pick_tasks(running, 1, 100000, odd, &calls, 3, NULL, out, 8);
    const uint32_t want[] = {1, 3, 5, 40};
    assert_int_equal(n, 4);
    assert_memory_equal(out, want, sizeof(want));
    assert_int_equal(calls, 6); /* 0..5 looked at, not 100000 */
    /* the walks of one answer share a budget: 4 indices (0..3: 1 and 3 listed), then none left */
    uint32_t walk = 4;
    calls = 0;
    n = status_pick_tasks(running, 1, 100000, odd, &calls, 3, &walk, out, 8);
    const uint32_t want2[] = {1, 3, 40};
    assert_int_equal(n, 3);
    assert_memory_equal(out, want2, sizeof(want2));
    assert_int_equal(calls, 4);
    assert_int_equal(walk, 0);
    n = status_pick_tasks(running, 1, 100000, odd, &calls, 3, &walk, out, 8);
    assert_int_equal(n, 1); /* only its running task */
    assert_int_equal(calls, 4);
}

/* Each family: one HELP and one TYPE line, before its samples; counters end in _total, others do not. */
static void metrics_families_are_well_formed(void **state)
{
    (void)state;
    status_snap_t s = base();
    s.tasks_by_state[TASK_SUCCEEDED] = 12;
    s.tasks_ok = 12;
    s.tasks_failed = 1;
    s.bytes_out = 123456789012ull;
    s.blocks_again = 2;
    s.blocks_not_stored = 5;
    s.disk_errors = 1;
    metrics_hist_t lat, disp;
    const double b[] = {0.01, 1};
    metrics_hist_init(&lat, b, 2);
    metrics_hist_init(&disp, b, 2);
    metrics_hist_observe(&lat, 0.005);
    metrics_hist_observe(&lat, 3);
    s.fetch_latency = &lat;
    s.dispatch_latency = &disp;
    s.loop_busy = NULL; /* left out */
    size_t len = 0;
    char *text = status_metrics(&s, &len);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "preon_tasks{state=\"succeeded\"} 12\n"));
    assert_non_null(strstr(text, "preon_tasks_decided_total{result=\"succeeded\"} 12\n"));
    assert_non_null(strstr(text, "preon_tasks_decided_total{result=\"failed\"} 1\n"));
    assert_non_null(strstr(text, "preon_sent_bytes_total 123456789012\n"));
    assert_non_null(strstr(text, "preon_received_blocks_again_total 2\n"));
    assert_non_null(strstr(text, "preon_blocks_not_stored_total 5\n"));
    assert_non_null(strstr(text, "preon_disk_errors_total 1\n"));
    assert_non_null(strstr(text, "preon_jobs{state=\"cancelled\"} 0\n"));
    assert_non_null(strstr(text, "preon_block_fetch_duration_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(text, "preon_block_fetch_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "preon_task_dispatch_duration_seconds_count 0\n"));
    assert_null(strstr(text, "preon_loop_busy_seconds_bucket"));
    char *save = NULL, *copy = strdup(text);
    char family[128] = "", type[32] = "";
    int helps = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], t[32];
        if (sscanf(line, "# HELP %127s", name) == 1) {
            assert_string_not_equal(name, family); /* one HELP per family */
            snprintf(family, sizeof(family), "%s", name);
            helps++;
            type[0] = '\0';
        } else if (sscanf(line, "# TYPE %127s %31s", name, t) == 2) {
            assert_string_equal(name, family);
            snprintf(type, sizeof(type), "%s", t);
            size_t n = strlen(name);
            bool total = n > 6 && !strcmp(name + n - 6, "_total");
            assert_true(!strcmp(t, "counter") == total);
        } else {
            assert_true(type[0]); /* a sample comes after its family's TYPE */
            assert_int_equal(strncmp(line, family, strlen(family)), 0);
        }
    }
    assert_true(helps >= 20);
    free(copy);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_has_every_section),
        cmocka_unit_test(json_names_are_text),
        cmocka_unit_test(metrics_families_are_well_formed),
        cmocka_unit_test(pick_tasks_running_and_failed_first),
        cmocka_unit_test(pick_tasks_with_a_filter_stops_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
