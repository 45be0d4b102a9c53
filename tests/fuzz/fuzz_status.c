/*
 * fuzz_status.c: libFuzzer target for the status JSON a browser and scripts read (pool/status.h,
 * status_json; `make fuzz`). Its strings are whatever other peers and users named: a remote job's
 * name and reason, a volunteer's key and address, a task's failure, the events; a name may be any
 * bytes a directory name can be.
 *
 * The input's lines fill a snapshot's strings. The JSON must always be made, load back as an
 * object, and hold each string as it was when it was UTF-8, or with U+FFFD in place of the bytes
 * that were not (never emptied, never cut). (The metrics text holds no string of the snapshot's
 * but fixed state names: it is left to tests/unit/test_status.c and promtool.)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSTR 10

/* s in the answer: itself if UTF-8, else as long or longer, valid, and the same where s was ASCII. */
static void check_str(const char *s, json_t *got)
{
    const char *g = json_string_value(got);
    if (!g)
        abort();
    json_t *as_is = json_string(s);
    if (as_is) {
        if (strcmp(g, s) != 0)
            abort();
        json_decref(as_is);
        return;
    }
    if (strlen(g) < strlen(s) || !strstr(g, "\xef\xbf\xbd"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *str[NSTR];
    size_t n = 0;
    for (char *p = buf; n < NSTR;) {
        char *nl = strchr(p, '\n');
        str[n++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    for (size_t i = n; i < NSTR; i++)
        str[i] = "";

    status_task_t task = {.index = 3, .state = TASK_FAILED, .attempts = 2, .worker = str[4], .worker_url = str[5],
                          .ms = 12, .has_exit = true, .exit_code = 1, .reason = str[6]};
    status_job_t job = {.name = str[0], .id = str[1], .state = "running", .reason = str[2], .submitter = str[3],
                        .remote = true, .from = str[5], .listed = true, .tasks = &task, .n_tasks = 1};
    job.counts.total = 5;
    status_peer_t peer = {.url = str[7], .pool = true};
    status_event_t ev = {.ms = 1, .level = "warn", .text = str[8]};
    status_snap_t s = {.host = str[9], .key = str[3], .http_url = str[7], .pool_name = str[0], .jobs = &job,
                       .n_jobs = 1, .jobs_total = 1, .peers = &peer, .n_peers = 1, .peers_total = 1, .events = &ev,
                       .n_events = 1};
    char *out = NULL;
    size_t len = 0;
    if (status_json(&s, &out, &len) != 0 || !out)
        abort();
    json_error_t err;
    json_t *o = json_loadb(out, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(o))
        abort();
    json_t *j = json_array_get(json_object_get(o, "jobs"), 0);
    json_t *t = json_array_get(json_object_get(j, "tasks"), 0);
    check_str(str[0], json_object_get(j, "name"));
    check_str(str[2], json_object_get(j, "reason"));
    check_str(str[4], json_object_get(t, "worker"));
    check_str(str[6], json_object_get(t, "reason"));
    check_str(str[7], json_object_get(json_array_get(json_object_get(o, "peers"), 0), "url"));
    check_str(str[8], json_object_get(json_array_get(json_object_get(o, "events"), 0), "text"));
    check_str(str[9], json_object_get(json_object_get(o, "peer"), "host"));
    json_decref(o);
    free(out);
    free(buf);
    return 0;
}
