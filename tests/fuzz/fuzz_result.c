/*
 * fuzz_result.c: libFuzzer target for what a volunteer sends of a result and a checkpoint before a
 * block of either is fetched (`make fuzz`): its result manifest (GET /v1/result/<job>/<task>, or
 * inline in /v1/done: fuzz_bundle) or checkpoint manifest (GET /v1/ckpt/<job>/<task>), decoded by
 * manifest_decode and held to the job's rules by pool__result_fits / pool__ckpt_fits
 * (pool/work.h), which decide whether the submitter writes it under results/ or DATA/.
 *
 * The input is a job description (preon.job text), a NUL byte, then the manifest. Whatever is
 * accepted must hold, checked here on its own: every path stays inside the directory it is
 * written to (relative, no empty, "." or ".." part, no part over NAME_MAX, at most
 * MANIFEST_MAX_PATH bytes); a result's files other than stdout, stderr and exit_code match the
 * job's outputs patterns and are not under checkpoint/, their sizes sum to at most the job's disk
 * (no wrap-around), stdout and stderr are each at most the disk, exit_code a few bytes; a
 * checkpoint has a file and at most the disk in all. A refusal says why.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jobdesc.h"
#include "core/manifest.h"
#include "exec/exec.h"
#include "pool/work.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* pool/work.c's I/O halves are linked but never called here. */
bool exec_is_unchanged_input(int dirfd, const char *name) { abort(); }
int store_put_hashed(store_t *s, const hash_t *h, const void *data, size_t len) { abort(); }
ssize_t store_read(store_t *s, const hash_t *h, void *buf, size_t len, uint64_t off) { abort(); }

static void check_confined(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len > MANIFEST_MAX_PATH || path[0] == '/')
        abort();
    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n > 255 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            abort();
        if (!slash)
            break;
        p = slash + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t dlen = nul ? (size_t)(nul - data) : 0;
    const char *man = nul ? (const char *)nul + 1 : (const char *)data;
    size_t mlen = nul ? size - dlen - 1 : size;
    char why[256] = "";
    jobdesc_t d;
    jobdesc_init(&d);
    if (nul && jobdesc_parse(&d, (const char *)data, dlen, why, sizeof(why)) != 0) {
        jobdesc_release(&d);
        jobdesc_init(&d); /* a bad description: the defaults, as a job without one */
    }
    manifest_t m;
    manifest_init(&m);
    if (manifest_decode(&m, man, mlen, why, sizeof(why)) == 0) {
        for (size_t i = 0; i < m.n_dirs; i++)
            check_confined(m.dirs[i]);
        for (size_t i = 0; i < m.n_files; i++)
            check_confined(m.files[i].path);
        why[0] = '\0';
        int rc = pool__result_fits(&m, &d, why, sizeof(why));
        if (rc == 0) {
            uint64_t outputs = 0;
            for (size_t i = 0; i < m.n_files; i++) {
                const manifest_file_t *f = &m.files[i];
                if (!strcmp(f->path, "exit_code")) {
                    if (f->size > POOL_MAX_EXIT_CODE_BYTES)
                        abort();
                } else if (!strcmp(f->path, "stdout") || !strcmp(f->path, "stderr")) {
                    if (f->size > d.disk_bytes)
                        abort();
                } else {
                    bool match = d.n_outputs == 0;
                    for (size_t k = 0; !match && k < d.n_outputs; k++)
                        match = fnmatch(d.outputs[k], f->path, FNM_PATHNAME | FNM_PERIOD) == 0;
                    if (!match || !strncmp(f->path, EXEC_CHECKPOINT_DIR "/", strlen(EXEC_CHECKPOINT_DIR) + 1) ||
                        f->size > d.disk_bytes || outputs + f->size > d.disk_bytes)
                        abort();
                    outputs += f->size;
                }
            }
        } else if ((rc != -EINVAL && rc != -EFBIG) || !why[0]) {
            abort();
        }
        why[0] = '\0';
        rc = pool__ckpt_fits(&m, d.disk_bytes, why, sizeof(why));
        if (rc == 0) {
            uint64_t total = 0;
            for (size_t i = 0; i < m.n_files; i++) {
                if (m.files[i].size > d.disk_bytes || total + m.files[i].size > d.disk_bytes)
                    abort();
                total += m.files[i].size;
            }
            if (m.n_files == 0)
                abort();
        } else if ((rc != -EINVAL && rc != -EFBIG) || !why[0]) {
            abort();
        }
    }
    manifest_release(&m);
    jobdesc_release(&d);
    return 0;
}
