/*
 * fuzz_manifest.c: libFuzzer target for manifest_decode (`make fuzz`).
 *
 * A manifest comes from any peer, so decoding must never crash or leak, and anything it accepts
 * must be canonical: re-encoding gives back exactly the input bytes (one job, one id). Accepted
 * manifests must also be internally consistent (manifest_find finds every file where it is).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    manifest_t m;
    manifest_init(&m);
    int rc = manifest_decode(&m, (const char *)data, size, why, sizeof(why));
    if (rc == 0) {
        char *out = NULL;
        size_t len = 0;
        if (manifest_encode(&m, &out, &len) != 0 || len != size || memcmp(out, data, size) != 0)
            abort();
        free(out);
        for (size_t i = 0; i < m.n_files; i++)
            if (manifest_find(&m, m.files[i].path) != (ssize_t)i)
                abort();
        hash_t id;
        manifest_id((const char *)data, size, &id);
    } else if ((rc != -EINVAL && rc != -EMSGSIZE) || why[0] == '\0') {
        abort();
    }
    manifest_release(&m);
    return 0;
}
