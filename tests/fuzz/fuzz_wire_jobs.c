/*
 * fuzz_wire_jobs.c: libFuzzer target for the jobs listing codec (pool/wire.h; `make fuzz`).
 *
 * A /v1/jobs answer comes from any pool peer. Decoding must never crash or leak; every entry kept
 * must pass wire_job_check, kept and dropped entries together stay within WIRE_MAX_JOBS, and the
 * kept entries encode to an answer that decodes back to the same entries, complete, none dropped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool job_equal(const wire_job_t *a, const wire_job_t *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->name, b->name) == 0 && a->state == b->state &&
           a->tasks == b->tasks && a->origin == b->origin && memcmp(&a->counts, &b->counts, sizeof(a->counts)) == 0 &&
           a->results == b->results && a->epoch == b->epoch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[128];
    wire_job_t *jobs = NULL, *back = NULL;
    size_t n = 0, dropped = 0, n2 = 0, dropped2 = 0, taken = 0, len = 0;
    bool complete = false, complete2 = false;
    if (wire_jobs_decode((const char *)data, size, &jobs, &n, &dropped, &complete, why, sizeof(why)) != 0)
        return 0;
    if (n + dropped > WIRE_MAX_JOBS || (n == 0) != (jobs == NULL) || (complete && dropped))
        abort();
    for (size_t i = 0; i < n; i++)
        if (wire_job_check(&jobs[i], NULL, 0) != 0)
            abort();
    char *body = NULL;
    if (wire_jobs_encode(jobs, n, &body, &len, &taken) != 0 || taken != n || len > WIRE_MAX_JOBS_BODY ||
        strlen(body) != len)
        abort();
    if (wire_jobs_decode(body, len, &back, &n2, &dropped2, &complete2, why, sizeof(why)) != 0 || n2 != n ||
        dropped2 != 0 || (complete && !complete2))
        abort();
    for (size_t i = 0; i < n; i++)
        if (!job_equal(&jobs[i], &back[i]))
            abort();
    free(body);
    free(jobs);
    free(back);
    return 0;
}
