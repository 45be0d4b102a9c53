/*
 * fuzz_bundle.c: libFuzzer target for bundle_parse (`make fuzz`).
 *
 * A bundle is the query string of a volunteer's /v1/done request: any host can send one. Parsing
 * must never crash or leak, and whatever it accepts must be consistent: the contents are exactly
 * as long as the manifest's files, and every file hashes to its one block hash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "pool/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    manifest_t m;
    manifest_init(&m);
    char *contents = NULL;
    size_t len = 0;
    int rc = bundle_parse((const char *)data, size, &m, &contents, &len, why, sizeof(why));
    if (rc == 0) {
        size_t pos = 0;
        for (size_t i = 0; i < m.n_files; i++) {
            const manifest_file_t *f = &m.files[i];
            if (f->n_blocks > 1 || pos + f->size > len)
                abort();
            if (f->n_blocks == 1) {
                hash_t h;
                hash_sha256(contents + pos, (size_t)f->size, &h);
                if (!hash_equal(&h, &f->blocks[0]))
                    abort();
            }
            pos += (size_t)f->size;
        }
        if (pos != len || len > BUNDLE_MAX_DATA)
            abort();
    }
    free(contents);
    manifest_release(&m);
    return 0;
}
