/*
 * fuzz_wire_results.c: libFuzzer target for the results list codec (pool/wire.h; `make fuzz`).
 *
 * A results list comes from whatever answers at the submitter's address, for a job of (here) 1000
 * tasks. Decoding must never crash or leak; what it keeps must hold: a head within its range
 * (after + kept + dropped <= done <= tasks), distinct tasks below the task count, each manifest
 * hashing to its id; and it encodes to a list that decodes back to the same, none dropped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/manifest.h"
#include "pool/wire.h"

#define NTASKS 1000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const wire_results_t *a, const wire_results_t *b)
{
    if (strcmp(a->job, b->job) || a->state != b->state || a->epoch != b->epoch || a->after != b->after ||
        a->done != b->done || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const wire_result_t *x = &a->results[i], *y = &b->results[i];
        if (x->task != y->task || x->exit_code != y->exit_code || x->ok != y->ok || strcmp(x->id, y->id) ||
            strcmp(x->worker, y->worker) || strcmp(x->sig, y->sig) ||
            x->manifest_len != y->manifest_len || memcmp(x->manifest, y->manifest, x->manifest_len))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[128];
    wire_results_t r, back;
    size_t dropped = 0, dropped2 = 0, taken = 0, len = 0;
    if (wire_results_decode((const char *)data, size, NTASKS, &r, &dropped, why, sizeof(why)) != 0) {
        if (r.n || r.results || r.text)
            abort();
        return 0;
    }
    if (r.done > NTASKS || r.after > r.done || r.n + dropped > (size_t)(r.done - r.after) || !wire_state_name(r.state))
        abort();
    for (size_t i = 0; i < r.n; i++) {
        const wire_result_t *e = &r.results[i];
        hash_t want, got;
        if (e->task >= NTASKS || e->exit_code < -1 || e->exit_code > 255 || e->manifest_len == 0 ||
            e->manifest[e->manifest_len] != '\0' || hash_from_hex(e->id, HASH_HEX_LEN, &want) != 0)
            abort();
        manifest_id(e->manifest, e->manifest_len, &got);
        if (!hash_equal(&want, &got))
            abort();
        for (size_t k = 0; k < i; k++)
            if (r.results[k].task == e->task)
                abort();
    }
    char *body = NULL;
    if (wire_results_encode(&r, NTASKS, &body, &len, &taken) != 0 || taken != r.n || len > WIRE_MAX_RESULTS_BODY ||
        strlen(body) != len)
        abort();
    if (wire_results_decode(body, len, NTASKS, &back, &dropped2, why, sizeof(why)) != 0 || dropped2 != 0 ||
        !same(&r, &back))
        abort();
    free(body);
    wire_results_release(&back);
    wire_results_release(&r);
    return 0;
}
