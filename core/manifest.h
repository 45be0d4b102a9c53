/**
 * @file manifest.h  The canonical job manifest. The job id is the SHA-256 of its canonical bytes.
 *
 * Canonical form: JSON (jansson) with sorted keys, no white space, integers only, UTF-8 strings, as
 * produced by manifest_encode. manifest_decode accepts only input whose re-encoding is byte-identical
 * (so one job has exactly one id) and checks every count, size and path against the limits below
 * before allocating. Format in docs/job-format.md.
 */
#ifndef PREON_CORE_MANIFEST_H
#define PREON_CORE_MANIFEST_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/hash.h"
#include "core/jobdesc.h"

#ifndef MANIFEST_MAX_BYTES
#define MANIFEST_MAX_BYTES (64u * 1024 * 1024)
#endif
#ifndef MANIFEST_MAX_FILES
#define MANIFEST_MAX_FILES 100000
#endif
#ifndef MANIFEST_MAX_PATH
#define MANIFEST_MAX_PATH 1024 /* bytes in a relative path */
#endif
/* bytes in one part of a path: a file or directory name (NAME_MAX); a longer one could not be made */
#define MANIFEST_MAX_PART 255
#ifndef MANIFEST_MAX_FILE_SIZE
#define MANIFEST_MAX_FILE_SIZE (1ull << 40)
#endif
#ifndef MANIFEST_MAX_NAME
#define MANIFEST_MAX_NAME 200
#endif
#define MANIFEST_VERSION 1
/** Block size of every file in a manifest (see docs/performance.md for why this size). */
#define MANIFEST_BLOCK_SIZE (256u * 1024)

typedef struct manifest_file {
    char *path;      /**< relative, '/'-separated, no "." or ".." or empty parts, none over MANIFEST_MAX_PART */
    uint64_t size;
    uint32_t mode;   /**< permission bits only (0..0777) */
    hash_t *blocks;  /**< ceil(size / block_size) block hashes (none for an empty file) */
    size_t n_blocks;
} manifest_file_t;

/** At most this many endorsements of the submitter's key travel with one job. */
#define MANIFEST_MAX_ENDORSEMENTS 8

/** A pool authority's endorsement of the submitter's key (pool/auth.h checks the signature). */
typedef struct manifest_endorsement {
    char *by;          /**< the authority's hex public key (64 digits) */
    uint64_t until_ms; /**< in force before this wall-clock time; 0: no end */
    char *sig;         /**< its hex signature (128 digits) */
} manifest_endorsement_t;

typedef struct manifest {
    uint32_t version;
    char *name;          /**< the directory name the submitter gave it */
    uint64_t created_ms; /**< publication time; makes two publishes of the same tree distinct jobs */
    char *submitter;     /**< hex public key of the submitter, or NULL (unsigned, local) */
    manifest_endorsement_t *endorsements; /**< of the submitter's key (needs a submitter); sorted by `by` */
    size_t n_endorsements;
    jobdesc_t desc;
    uint32_t block_size;
    manifest_file_t *files; /**< sorted by path (strcmp) */
    size_t n_files;
    char **dirs;            /**< every directory (incl. empty ones), sorted, relative */
    size_t n_dirs;
} manifest_t;

/** Zeroes m and sets version, block_size and jobdesc defaults. Pair with manifest_release. */
void manifest_init(manifest_t *m);
void manifest_release(manifest_t *m);
/** Sorts files and dirs into canonical order (call before encode when built by hand). */
void manifest_sort(manifest_t *m);
/**
 * Canonical bytes in *out (xmalloc'd, NUL-terminated, caller frees). 0, -EINVAL if m is invalid, or
 * -EMSGSIZE if the bytes would exceed MANIFEST_MAX_BYTES (so no peer could decode them).
 */
int manifest_encode(const manifest_t *m, char **out, size_t *outlen);
/** Parses untrusted bytes. 0, -EMSGSIZE or -EINVAL with `why` filled. m must be manifest_init'ed. */
int manifest_decode(manifest_t *m, const char *buf, size_t len, char *why, size_t whylen);
/** The job id: SHA-256 of the canonical bytes. */
void manifest_id(const char *buf, size_t len, hash_t *id);
/** 0 if path is a valid relative path inside a job (see above), else -EINVAL. */
int manifest_check_path(const char *path);
/** Index of the file with this path, or -1. Binary search (files sorted). */
ssize_t manifest_find(const manifest_t *m, const char *path);

#endif
