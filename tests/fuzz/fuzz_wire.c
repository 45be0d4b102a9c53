/*
 * fuzz_wire.c: libFuzzer target for the wire codecs (pool/wire.h; `make fuzz`).
 *
 * A lease answer comes from whatever answers at the submitter's address. Decoding must never crash
 * or leak, and whatever it accepts must hold: 1..WIRE_MAX_LEASE distinct tasks below the job's
 * task count, a lease length in range, and its encoding decodes back to the same. The same for the
 * head of a done report, a volunteer's decline (a reason its submitter keeps: decline_check holds)
 * and the query of a live output update (every number in range).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[128];
    uint32_t ntasks = size > 0 ? (uint32_t)data[0] + 1 : 1; /* the first byte picks the job's size */
    wire_lease_t l, back;
    wire_done_t d, dback;
    if (wire_done_decode((const char *)data, size, &d, why, sizeof(why)) == 0) {
        char q[320];
        int qn = wire_done_encode(&d, q, sizeof(q));
        if (qn <= 0 || wire_done_decode(q, (size_t)qn, &dback, why, sizeof(why)) != 0 ||
            dback.exit_code != d.exit_code || dback.elapsed_ms != d.elapsed_ms || strcmp(dback.rid, d.rid) != 0 ||
            strcmp(dback.rsig, d.rsig) != 0)
            abort();
    }
    wire_output_t o, oback;
    if (wire_output_decode((const char *)data, size, &o, why, sizeof(why)) == 0) {
        char q[256];
        if (o.run == 0 || o.run > WIRE_MAX_RUN || o.len[0] > WIRE_MAX_OUTPUT_CHUNK ||
            o.len[1] > WIRE_MAX_OUTPUT_CHUNK || o.off[0] > WIRE_MAX_OUTPUT_OFF || o.off[1] > WIRE_MAX_OUTPUT_OFF)
            abort();
        int qn = wire_output_encode(&o, q, sizeof(q));
        if (qn <= 0 || wire_output_decode(q, (size_t)qn, &oback, why, sizeof(why)) != 0 ||
            oback.run != o.run || oback.off[0] != o.off[0] || oback.off[1] != o.off[1] || oback.len[0] != o.len[0] ||
            oback.len[1] != o.len[1] || strcmp(oback.sha, o.sha) != 0)
            abort();
    }
    decline_t dc, dcback;
    if (wire_decline_decode((const char *)data, size, &dc, why, sizeof(why)) == 0) {
        char q[128];
        if (decline_check(&dc) != 0)
            abort();
        int qn = wire_decline_encode(&dc, q, sizeof(q));
        if (dc.code != DECLINE_OTHER &&
            (qn <= 0 || wire_decline_decode(q, (size_t)qn, &dcback, why, sizeof(why)) != 0 || dcback.code != dc.code ||
             dcback.have != dc.have || dcback.used != dc.used || dcback.of != dc.of))
            abort();
    }
    if (wire_lease_decode((const char *)data, size, ntasks, &l, NULL, why, sizeof(why)) != 0)
        return 0;
    if (l.n == 0 || l.n > WIRE_MAX_LEASE || l.lease_ms < WIRE_LEASE_MS_MIN || l.lease_ms > WIRE_LEASE_MS_MAX)
        abort();
    for (size_t i = 0; i < l.n; i++) {
        if (l.tasks[i] >= ntasks)
            abort();
        for (size_t k = 0; k < i; k++)
            if (l.tasks[k] == l.tasks[i])
                abort();
    }
    char buf[WIRE_MAX_BODY];
    int n = wire_lease_encode(&l, buf, sizeof(buf));
    if (n <= 0 || wire_lease_decode(buf, (size_t)n, ntasks, &back, NULL, why, sizeof(why)) != 0 || back.n != l.n ||
        back.lease_ms != l.lease_ms || memcmp(back.tasks, l.tasks, l.n * sizeof(l.tasks[0])) != 0)
        abort();
    for (size_t i = 0; i < l.n; i++) { /* checkpoints: 64 lower-case hex or none, and they round-trip */
        size_t cl = strnlen(l.ckpt[i], sizeof(l.ckpt[i]));
        if ((cl != 0 && cl != 64) || strcmp(back.ckpt[i], l.ckpt[i]) != 0)
            abort();
        for (size_t k = 0; k < cl; k++)
            if (!((l.ckpt[i][k] >= '0' && l.ckpt[i][k] <= '9') || (l.ckpt[i][k] >= 'a' && l.ckpt[i][k] <= 'f')))
                abort();
    }
    return 0;
}
