/*
 * fuzz_jobdesc.c: libFuzzer target for jobdesc_parse (`make fuzz`).
 *
 * Beyond "does not crash", it checks the property the rest of Preon relies on: whatever the parser
 * accepts passes jobdesc_check and survives a trip through a manifest (encode, decode) unchanged,
 * so a job description can never produce a manifest that peers would refuse. Rejections must
 * return -EINVAL or -EMSGSIZE and say why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jobdesc.h"
#include "core/manifest.h"
#include "core/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_round_trip(const jobdesc_t *d)
{
    char why[256];
    manifest_t m, back;
    manifest_init(&m);
    m.name = xstrdup("fuzz");
    jobdesc_release(&m.desc);
    jobdesc_copy(&m.desc, d);
    char *out = NULL;
    size_t len = 0;
    if (manifest_encode(&m, &out, &len) != 0)
        abort();
    manifest_init(&back);
    if (manifest_decode(&back, out, len, why, sizeof(why)) != 0)
        abort();
    const jobdesc_t *b = &back.desc;
    if (!str_eq(b->command, d->command) || b->tasks != d->tasks || b->timeout_ms != d->timeout_ms ||
        b->memory_bytes != d->memory_bytes || b->disk_bytes != d->disk_bytes || b->processes != d->processes ||
        b->replicas != d->replicas || !str_eq(b->os, d->os) || !str_eq(b->arch, d->arch) ||
        b->network != d->network || b->n_outputs != d->n_outputs)
        abort();
    for (size_t i = 0; i < d->n_outputs; i++)
        if (!str_eq(b->outputs[i], d->outputs[i]))
            abort();
    free(out);
    manifest_release(&back);
    manifest_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    jobdesc_t d;
    jobdesc_init(&d);
    int rc = jobdesc_parse(&d, (const char *)data, size, why, sizeof(why));
    if (rc == 0) {
        if (jobdesc_check(&d, why, sizeof(why)) != 0)
            abort();
        check_round_trip(&d);
    } else if ((rc != -EINVAL && rc != -EMSGSIZE) || why[0] == '\0' || strlen(why) >= sizeof(why)) {
        abort();
    }
    jobdesc_release(&d);
    return 0;
}
