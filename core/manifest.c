/*
 * manifest.c: the job manifest, its one canonical JSON encoding, and a decoder for untrusted bytes.
 *
 * A job's id is the SHA-256 of its manifest's bytes, so the bytes must be a function of the
 * manifest: jansson with JSON_COMPACT | JSON_SORT_KEYS, integers only, optional fields omitted
 * rather than null, files and dirs sorted. Rather than re-implement every canonical rule as a
 * check, the decoder parses, validates the structure, re-encodes, and accepts only byte-identical
 * input: that one comparison rejects other white space, key orders, escapes, number spellings and
 * hex case in a single place. Everything before it exists to give a useful `why` and to keep
 * allocations bounded by named limits (the input size cap bounds jansson's own allocations).
 *
 * manifest_validate (static) is the single definition of a valid manifest; the encoder runs it
 * too, so a peer can never publish a manifest that other peers would refuse.
 */
#include "core/log.h"
#include "core/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* The submitter is a hex public key (Ed25519: 32 bytes); allow up to 64 bytes for other schemes. */
#define SUBMITTER_MAX_HEX 128
#define QUOTE_MAX 60


/* At most QUOTE_MAX bytes of s for a message, cut on a UTF-8 boundary. */
static const char *quote(const char *s, char buf[QUOTE_MAX + 4])
{
    size_t len = strlen(s);
    if (len <= QUOTE_MAX)
        return s;
    size_t n = QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, s, n);
    memcpy(buf + n, "...", 4);
    return buf;
}

/* ---- lifecycle ---- */

void manifest_init(manifest_t *m)
{
    memset(m, 0, sizeof(*m));
    m->version = MANIFEST_VERSION;
    m->block_size = MANIFEST_BLOCK_SIZE;
    jobdesc_init(&m->desc);
}

void manifest_release(manifest_t *m)
{
    free(m->name);
    free(m->submitter);
    for (size_t i = 0; i < m->n_endorsements; i++) {
        free(m->endorsements[i].by);
        free(m->endorsements[i].sig);
    }
    free(m->endorsements);
    jobdesc_release(&m->desc);
    for (size_t i = 0; i < m->n_files; i++) {
        free(m->files[i].path);
        free(m->files[i].blocks);
    }
    free(m->files);
    for (size_t i = 0; i < m->n_dirs; i++)
        free(m->dirs[i]);
    free(m->dirs);
    memset(m, 0, sizeof(*m));
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const manifest_file_t *)a)->path, ((const manifest_file_t *)b)->path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void manifest_sort(manifest_t *m)
{
    if (m->n_files > 1)
        qsort(m->files, m->n_files, sizeof(*m->files), cmp_file);
    if (m->n_dirs > 1)
        qsort(m->dirs, m->n_dirs, sizeof(*m->dirs), cmp_str);
}

/* ---- validation ---- */

int manifest_check_path(const char *path)
{
    if (!path)
        return -EINVAL;
    size_t len = strlen(path);
    if (len == 0 || len > MANIFEST_MAX_PATH || path[0] == '/' || !jobdesc_utf8_valid(path, len))
        return -EINVAL;
    const char *c = path;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || n > MANIFEST_MAX_PART || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return -EINVAL; /* covers "a//b" and a trailing '/' too */
        if (!slash)
            return 0;
        c = slash + 1;
    }
}

static const char *check_name(const char *name)
{
    if (!name || !*name)
        return "empty";
    size_t len = strlen(name);
    if (len > MANIFEST_MAX_NAME)
        return "too long";
    if (name[0] == '.')
        return "starts with '.'";
    if (strchr(name, '/'))
        return "contains '/'";
    for (const char *c = name; *c; c++) /* it is a line of the status text (and jobs/ refuses them too) */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return "has a control character";
    if (!jobdesc_utf8_valid(name, len))
        return "not valid UTF-8";
    return NULL;
}

static bool is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* strcmp order between the prefix p[0..n) and the C string s. */
static int cmp_prefix(const char *p, size_t n, const char *s)
{
    int r = strncmp(p, s, n);
    if (r)
        return r;
    return s[n] == '\0' ? 0 : -1;
}

/* Is p[0..n) one of the (sorted) dirs? O(log n_dirs). */
static bool has_dir(const manifest_t *m, const char *p, size_t n)
{
    size_t lo = 0, hi = m->n_dirs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_prefix(p, n, m->dirs[mid]);
        if (r == 0)
            return true;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* The parent directory of path must be listed (the root needs no entry). */
static bool parent_listed(const manifest_t *m, const char *path)
{
    const char *slash = strrchr(path, '/');
    return !slash || has_dir(m, path, (size_t)(slash - path));
}

static uint64_t blocks_for(uint64_t size, uint32_t block_size)
{
    return size / block_size + (size % block_size != 0);
}

/*
 * Checks m completely. Dirs are checked for order first, so has_dir may binary-search them; each
 * entry's immediate parent must be a listed dir, and since that holds for dirs too, every ancestor
 * of every entry is listed.
 */
static int manifest_validate(const manifest_t *m, char *why, size_t whylen)
{
    char q[QUOTE_MAX + 4], jw[256];
    const char *bad;
    if (m->version != MANIFEST_VERSION) {
        why_printf(why, whylen, "unsupported version %u (this peer reads %d)", m->version, MANIFEST_VERSION);
        return -EINVAL;
    }
    if ((bad = check_name(m->name)) != NULL) {
        why_printf(why, whylen, "name: %s", bad);
        return -EINVAL;
    }
    if (m->created_ms > (uint64_t)INT64_MAX) {
        why_printf(why, whylen, "created_ms: out of range");
        return -EINVAL;
    }
    if (m->submitter) {
        size_t n = strlen(m->submitter);
        if (n == 0 || n % 2 || n > SUBMITTER_MAX_HEX || !is_lower_hex(m->submitter, n)) {
            why_printf(why, whylen, "submitter: not a lower-case hex key of at most %d digits", SUBMITTER_MAX_HEX);
            return -EINVAL;
        }
    }
    if (m->n_endorsements && !m->submitter) {
        why_printf(why, whylen, "endorsements: a job without a submitter has none");
        return -EINVAL;
    }
    if (m->n_endorsements > MANIFEST_MAX_ENDORSEMENTS) {
        why_printf(why, whylen, "endorsements: more than %d", MANIFEST_MAX_ENDORSEMENTS);
        return -EINVAL;
    }
    for (size_t i = 0; i < m->n_endorsements; i++) {
        const manifest_endorsement_t *e = &m->endorsements[i];
        if (!e->by || strlen(e->by) != 64 || !is_lower_hex(e->by, 64) || !e->sig || strlen(e->sig) != 128 ||
            !is_lower_hex(e->sig, 128)) {
            why_printf(why, whylen, "endorsements[%zu]: by must be 64 and sig 128 lower-case hex digits", i);
            return -EINVAL;
        }
        if (e->until_ms > (uint64_t)INT64_MAX) {
            why_printf(why, whylen, "endorsements[%zu]: until_ms out of range", i);
            return -EINVAL;
        }
        if (i && strcmp(m->endorsements[i - 1].by, e->by) >= 0) {
            why_printf(why, whylen, "endorsements: not sorted by key, or one key twice");
            return -EINVAL;
        }
    }
    if (m->block_size != MANIFEST_BLOCK_SIZE) {
        why_printf(why, whylen, "block_size: %u is not %u", m->block_size, MANIFEST_BLOCK_SIZE);
        return -EINVAL;
    }
    if (jobdesc_check(&m->desc, jw, sizeof(jw)) != 0) {
        why_printf(why, whylen, "job: %s", jw);
        return -EINVAL;
    }
    if (m->n_dirs > MANIFEST_MAX_FILES || m->n_files > MANIFEST_MAX_FILES) {
        why_printf(why, whylen, "more than %d %s", MANIFEST_MAX_FILES, m->n_dirs > MANIFEST_MAX_FILES ? "dirs" : "files");
        return -EINVAL;
    }
    for (size_t i = 0; i < m->n_dirs; i++) {
        const char *d = m->dirs[i];
        if (manifest_check_path(d) != 0) {
            why_printf(why, whylen, "dirs[%zu]: '%s' is not a valid relative path", i, d ? quote(d, q) : "(null)");
            return -EINVAL;
        }
        if (i > 0 && strcmp(m->dirs[i - 1], d) >= 0) {
            why_printf(why, whylen, "dirs[%zu]: '%s' is %s", i, quote(d, q),
                    strcmp(m->dirs[i - 1], d) ? "out of order" : "listed twice");
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < m->n_dirs; i++) {
        if (!parent_listed(m, m->dirs[i])) {
            why_printf(why, whylen, "dirs[%zu]: parent of '%s' is not in dirs", i, quote(m->dirs[i], q));
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        if (manifest_check_path(f->path) != 0) {
            why_printf(why, whylen, "files[%zu]: '%s' is not a valid relative path", i,
                    f->path ? quote(f->path, q) : "(null)");
            return -EINVAL;
        }
        if (i > 0 && strcmp(m->files[i - 1].path, f->path) >= 0) {
            why_printf(why, whylen, "files[%zu]: '%s' is %s", i, quote(f->path, q),
                    strcmp(m->files[i - 1].path, f->path) ? "out of order" : "listed twice");
            return -EINVAL;
        }
        if (has_dir(m, f->path, strlen(f->path))) {
            why_printf(why, whylen, "files[%zu]: '%s' is also a dir", i, quote(f->path, q));
            return -EINVAL;
        }
        if (!parent_listed(m, f->path)) {
            why_printf(why, whylen, "files[%zu]: parent of '%s' is not in dirs", i, quote(f->path, q));
            return -EINVAL;
        }
        if (f->size > MANIFEST_MAX_FILE_SIZE) {
            why_printf(why, whylen, "files[%zu]: size larger than %llu", i, (unsigned long long)MANIFEST_MAX_FILE_SIZE);
            return -EINVAL;
        }
        if (f->mode > 0777) {
            why_printf(why, whylen, "files[%zu]: mode %o has more than permission bits", i, f->mode);
            return -EINVAL;
        }
        if (f->n_blocks != blocks_for(f->size, m->block_size) || (f->n_blocks && !f->blocks)) {
            why_printf(why, whylen, "files[%zu]: %zu blocks for %llu bytes (want %llu)", i, f->n_blocks,
                    (unsigned long long)f->size, (unsigned long long)blocks_for(f->size, m->block_size));
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- encoding ---- */

/* jansson calls fail only on out-of-memory (or invalid UTF-8, which validation has ruled out). */
static json_t *must(json_t *j)
{
    if (!j) {
        fprintf(stderr, "preon: out of memory encoding a manifest\n");
        abort();
    }
    return j;
}

static void put(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new_nocheck(obj, key, must(value)) != 0)
        must(NULL);
}

static void append(json_t *arr, json_t *value)
{
    if (json_array_append_new(arr, must(value)) != 0)
        must(NULL);
}

static json_t *text(const char *s) { return json_stringn(s, strlen(s)); }

static json_t *encode_job(const jobdesc_t *d)
{
    json_t *job = must(json_object());
    put(job, "command", text(d->command));
    put(job, "tasks", json_integer(d->tasks));
    json_t *outs = must(json_array());
    for (size_t i = 0; i < d->n_outputs; i++)
        append(outs, text(d->outputs[i]));
    put(job, "outputs", outs);
    put(job, "timeout_ms", json_integer((json_int_t)d->timeout_ms));
    put(job, "memory", json_integer((json_int_t)d->memory_bytes));
    put(job, "disk", json_integer((json_int_t)d->disk_bytes));
    put(job, "processes", json_integer(d->processes));
    put(job, "replicas", json_integer(d->replicas));
    if (d->quorum)
        put(job, "quorum", json_integer(d->quorum));
    if (d->max_replicas)
        put(job, "max_replicas", json_integer(d->max_replicas));
    if (d->grace_ms)
        put(job, "grace_ms", json_integer((json_int_t)d->grace_ms));
    if (d->adaptive)
        put(job, "adaptive", json_true());
    if (d->os)
        put(job, "os", text(d->os));
    if (d->arch)
        put(job, "arch", text(d->arch));
    put(job, "network", json_boolean(d->network));
    return job;
}

/* m must have passed manifest_validate. */
static void encode_valid(const manifest_t *m, char **out, size_t *outlen)
{
    json_t *root = must(json_object());
    put(root, "v", json_integer(m->version));
    put(root, "name", text(m->name));
    put(root, "created_ms", json_integer((json_int_t)m->created_ms));
    if (m->submitter)
        put(root, "submitter", json_string_nocheck(m->submitter));
    if (m->n_endorsements) {
        json_t *es = must(json_array());
        for (size_t i = 0; i < m->n_endorsements; i++) {
            json_t *je = must(json_object());
            put(je, "by", json_string_nocheck(m->endorsements[i].by));
            put(je, "until_ms", json_integer((json_int_t)m->endorsements[i].until_ms));
            put(je, "sig", json_string_nocheck(m->endorsements[i].sig));
            append(es, je);
        }
        put(root, "endorsements", es);
    }
    put(root, "block_size", json_integer(m->block_size));
    put(root, "job", encode_job(&m->desc));
    json_t *dirs = must(json_array());
    for (size_t i = 0; i < m->n_dirs; i++)
        append(dirs, text(m->dirs[i]));
    put(root, "dirs", dirs);
    json_t *files = must(json_array());
    char hex[HASH_HEX_LEN + 1];
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        json_t *jf = must(json_object());
        put(jf, "path", text(f->path));
        put(jf, "size", json_integer((json_int_t)f->size));
        put(jf, "mode", json_integer(f->mode));
        json_t *blocks = must(json_array());
        for (size_t b = 0; b < f->n_blocks; b++) {
            hash_to_hex(&f->blocks[b], hex);
            append(blocks, json_stringn_nocheck(hex, HASH_HEX_LEN)); /* our own hex: skip UTF-8 scan */
        }
        put(jf, "blocks", blocks);
        append(files, jf);
    }
    put(root, "files", files);
    char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!s)
        must(NULL);
    *out = s;
    *outlen = strlen(s);
}

/*
 * A manifest no peer would decode must not be published either. Each block hash alone takes 67
 * bytes ("<64 hex>",), so a cheap lower bound catches a huge file before building the JSON.
 */
int manifest_encode(const manifest_t *m, char **out, size_t *outlen)
{
    char why[256];
    if (manifest_validate(m, why, sizeof(why)) != 0)
        return -EINVAL;
    uint64_t min_bytes = 0;
    for (size_t i = 0; i < m->n_files; i++)
        min_bytes += (uint64_t)m->files[i].n_blocks * (HASH_HEX_LEN + 3);
    if (min_bytes > MANIFEST_MAX_BYTES)
        return -EMSGSIZE;
    char *s;
    size_t len;
    encode_valid(m, &s, &len);
    if (len > MANIFEST_MAX_BYTES) {
        free(s);
        return -EMSGSIZE;
    }
    *out = s;
    *outlen = len;
    return 0;
}

/* ---- decoding ---- */

typedef struct field {
    const char *key;
    bool optional;
} field_t;

/* Every key of obj must be in fields, and every non-optional field present. */
static int check_keys(json_t *obj, const char *where, const field_t *fields, size_t n, char *why, size_t whylen)
{
    char q[QUOTE_MAX + 4];
    if (!json_is_object(obj)) {
        why_printf(why, whylen, "%s: not an object", where);
        return -EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(fields[i].key, key) != 0)
            i++;
        if (i == n) {
            why_printf(why, whylen, "%s: unknown key '%s'", where, quote(key, q));
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!fields[i].optional && !json_object_get(obj, fields[i].key)) {
            why_printf(why, whylen, "%s: missing '%s'", where, fields[i].key);
            return -EINVAL;
        }
    }
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *out, const char *where, char *why,
                    size_t whylen)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        why_printf(why, whylen, "%s.%s: not an integer", where, key);
        return -EINVAL;
    }
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max) {
        why_printf(why, whylen, "%s.%s: %lld out of range 0..%llu", where, key, (long long)i, (unsigned long long)max);
        return -EINVAL;
    }
    *out = (uint64_t)i;
    return 0;
}

/* A fresh copy of the string at obj[key] (or of obj itself if key is NULL). */
static int get_str(json_t *obj, const char *key, char **out, const char *where, char *why, size_t whylen)
{
    json_t *v = key ? json_object_get(obj, key) : obj;
    if (!json_is_string(v)) {
        why_printf(why, whylen, "%s%s%s: not a string", where, key ? "." : "", key ? key : "");
        return -EINVAL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) { /* only with JSON_ALLOW_NUL, but be sure */
        why_printf(why, whylen, "%s%s%s: NUL in string", where, key ? "." : "", key ? key : "");
        return -EINVAL;
    }
    free(*out);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

static int decode_job(jobdesc_t *d, json_t *job, char *why, size_t whylen)
{
    static const field_t fields[] = {
        {"command", false}, {"tasks", false},    {"outputs", false},  {"timeout_ms", false},
        {"memory", false},  {"disk", false},     {"processes", false}, {"replicas", false},
        {"quorum", true},   {"max_replicas", true}, {"adaptive", true},
        {"os", true},       {"arch", true},      {"network", false}, {"grace_ms", true},
    };
    int rc = check_keys(job, "job", fields, sizeof(fields) / sizeof(fields[0]), why, whylen);
    if (rc)
        return rc;
    uint64_t v;
    if ((rc = get_str(job, "command", &d->command, "job", why, whylen)))
        return rc;
    if ((rc = get_uint(job, "tasks", JOBDESC_MAX_TASKS, &v, "job", why, whylen)))
        return rc;
    d->tasks = (uint32_t)v;
    if ((rc = get_uint(job, "timeout_ms", JOBDESC_MAX_TIMEOUT_MS, &d->timeout_ms, "job", why, whylen)) ||
        (rc = get_uint(job, "memory", INT64_MAX, &d->memory_bytes, "job", why, whylen)) ||
        (rc = get_uint(job, "disk", INT64_MAX, &d->disk_bytes, "job", why, whylen)))
        return rc;
    if ((rc = get_uint(job, "processes", JOBDESC_MAX_PROCESSES, &v, "job", why, whylen)))
        return rc;
    d->processes = (uint32_t)v;
    if ((rc = get_uint(job, "replicas", JOBDESC_MAX_REPLICAS, &v, "job", why, whylen)))
        return rc;
    d->replicas = (uint32_t)v;
    if (json_object_get(job, "quorum")) {
        if ((rc = get_uint(job, "quorum", JOBDESC_MAX_REPLICAS, &v, "job", why, whylen)))
            return rc;
        d->quorum = (uint32_t)v;
    }
    if (json_object_get(job, "max_replicas")) {
        if ((rc = get_uint(job, "max_replicas", JOBDESC_MAX_MAX_REPLICAS, &v, "job", why, whylen)))
            return rc;
        d->max_replicas = (uint32_t)v;
    }
    if (json_object_get(job, "grace_ms")) {
        if ((rc = get_uint(job, "grace_ms", JOBDESC_MAX_GRACE_MS, &d->grace_ms, "job", why, whylen)))
            return rc;
        if (d->grace_ms < 1000) { /* left out when not set: the one canonical form */
            why_printf(why, whylen, "job.grace_ms must be 1000..%llu (got %llu)",
                       (unsigned long long)JOBDESC_MAX_GRACE_MS, (unsigned long long)d->grace_ms);
            return -EINVAL;
        }
    }
    json_t *ad = json_object_get(job, "adaptive");
    if (ad && !json_is_true(ad)) { /* left out when false: the one canonical form */
        why_printf(why, whylen, "job.adaptive: only true, or left out");
        return -EINVAL;
    }
    d->adaptive = ad != NULL;
    if (json_object_get(job, "os") && (rc = get_str(job, "os", &d->os, "job", why, whylen)))
        return rc;
    if (json_object_get(job, "arch") && (rc = get_str(job, "arch", &d->arch, "job", why, whylen)))
        return rc;
    json_t *net = json_object_get(job, "network");
    if (!json_is_boolean(net)) {
        why_printf(why, whylen, "job.network: not true or false");
        return -EINVAL;
    }
    d->network = json_is_true(net);

    json_t *outs = json_object_get(job, "outputs");
    if (!json_is_array(outs) || json_array_size(outs) > JOBDESC_MAX_OUTPUTS) {
        why_printf(why, whylen, "job.outputs: not an array of at most %d patterns", JOBDESC_MAX_OUTPUTS);
        return -EINVAL;
    }
    size_t n = json_array_size(outs);
    if (n) {
        d->outputs = xcalloc(n, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            rc = get_str(json_array_get(outs, i), NULL, &d->outputs[i], "job.outputs[]", why, whylen);
            d->n_outputs = i + 1; /* so release frees what was copied */
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int decode_file(manifest_file_t *f, json_t *jf, size_t idx, char *why, size_t whylen)
{
    static const field_t fields[] = {{"path", false}, {"size", false}, {"mode", false}, {"blocks", false}};
    char where[48];
    snprintf(where, sizeof(where), "files[%zu]", idx);
    int rc = check_keys(jf, where, fields, 4, why, whylen);
    if (rc)
        return rc;
    uint64_t mode;
    if ((rc = get_str(jf, "path", &f->path, where, why, whylen)) ||
        (rc = get_uint(jf, "size", MANIFEST_MAX_FILE_SIZE, &f->size, where, why, whylen)) ||
        (rc = get_uint(jf, "mode", 0777, &mode, where, why, whylen)))
        return rc;
    f->mode = (uint32_t)mode;
    json_t *blocks = json_object_get(jf, "blocks");
    uint64_t want = blocks_for(f->size, MANIFEST_BLOCK_SIZE);
    /* Compare with the size-derived count before allocating: size is capped, so want is too. */
    if (!json_is_array(blocks) || json_array_size(blocks) != want) {
        why_printf(why, whylen, "%s.blocks: want an array of %llu block hashes for %llu bytes", where,
                (unsigned long long)want, (unsigned long long)f->size);
        return -EINVAL;
    }
    f->n_blocks = (size_t)want;
    f->blocks = want ? xcalloc((size_t)want, sizeof(hash_t)) : NULL;
    for (size_t b = 0; b < want; b++) {
        json_t *h = json_array_get(blocks, b);
        const char *s = json_string_value(h);
        size_t len = json_string_length(h);
        if (!s || len != HASH_HEX_LEN || !is_lower_hex(s, len) || hash_from_hex(s, len, &f->blocks[b]) != 0) {
            why_printf(why, whylen, "%s.blocks[%zu]: not %d lower-case hex digits", where, b, HASH_HEX_LEN);
            return -EINVAL;
        }
    }
    return 0;
}

/* Fills m (manifest_init'ed) from root; types, ranges and counts only, manifest_validate does the rest. */
static int decode_root(manifest_t *m, json_t *root, char *why, size_t whylen)
{
    static const field_t fields[] = {
        {"v", false},   {"name", false}, {"created_ms", false}, {"submitter", true}, {"endorsements", true},
        {"block_size", false}, {"job", false}, {"dirs", false}, {"files", false},
    };
    int rc = check_keys(root, "manifest", fields, sizeof(fields) / sizeof(fields[0]), why, whylen);
    if (rc)
        return rc;
    uint64_t v;
    if ((rc = get_uint(root, "v", UINT32_MAX, &v, "manifest", why, whylen)))
        return rc;
    m->version = (uint32_t)v;
    if (m->version != MANIFEST_VERSION) {
        why_printf(why, whylen, "unsupported version %u (this peer reads %d)", m->version, MANIFEST_VERSION);
        return -EINVAL;
    }
    if ((rc = get_str(root, "name", &m->name, "manifest", why, whylen)) ||
        (rc = get_uint(root, "created_ms", INT64_MAX, &m->created_ms, "manifest", why, whylen)))
        return rc;
    if (json_object_get(root, "submitter") && (rc = get_str(root, "submitter", &m->submitter, "manifest", why, whylen)))
        return rc;
    json_t *es = json_object_get(root, "endorsements");
    if (es) {
        if (!json_is_array(es) || json_array_size(es) == 0 || json_array_size(es) > MANIFEST_MAX_ENDORSEMENTS) {
            why_printf(why, whylen, "endorsements: not an array of 1..%d endorsements", MANIFEST_MAX_ENDORSEMENTS);
            return -EINVAL;
        }
        m->endorsements = xcalloc(json_array_size(es), sizeof(*m->endorsements));
        static const field_t efields[] = {{"by", false}, {"until_ms", false}, {"sig", false}};
        for (size_t i = 0; i < json_array_size(es); i++) {
            json_t *je = json_array_get(es, i);
            manifest_endorsement_t *e = &m->endorsements[i];
            m->n_endorsements++;
            if ((rc = check_keys(je, "endorsement", efields, 3, why, whylen)) ||
                (rc = get_str(je, "by", &e->by, "endorsement", why, whylen)) ||
                (rc = get_uint(je, "until_ms", INT64_MAX, &e->until_ms, "endorsement", why, whylen)) ||
                (rc = get_str(je, "sig", &e->sig, "endorsement", why, whylen)))
                return rc;
        }
    }
    if ((rc = get_uint(root, "block_size", UINT32_MAX, &v, "manifest", why, whylen)))
        return rc;
    m->block_size = (uint32_t)v;
    if (m->block_size != MANIFEST_BLOCK_SIZE) { /* decode_file relies on it */
        why_printf(why, whylen, "block_size: %u is not %u", m->block_size, MANIFEST_BLOCK_SIZE);
        return -EINVAL;
    }
    if ((rc = decode_job(&m->desc, json_object_get(root, "job"), why, whylen)))
        return rc;

    json_t *dirs = json_object_get(root, "dirs");
    if (!json_is_array(dirs) || json_array_size(dirs) > MANIFEST_MAX_FILES) {
        why_printf(why, whylen, "dirs: not an array of at most %d paths", MANIFEST_MAX_FILES);
        return -EINVAL;
    }
    size_t n = json_array_size(dirs);
    if (n) {
        m->dirs = xcalloc(n, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            rc = get_str(json_array_get(dirs, i), NULL, &m->dirs[i], "dirs[]", why, whylen);
            m->n_dirs = i + 1;
            if (rc)
                return rc;
        }
    }

    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files) || json_array_size(files) > MANIFEST_MAX_FILES) {
        why_printf(why, whylen, "files: not an array of at most %d files", MANIFEST_MAX_FILES);
        return -EINVAL;
    }
    n = json_array_size(files);
    if (n) {
        m->files = xcalloc(n, sizeof(*m->files));
        for (size_t i = 0; i < n; i++) {
            m->n_files = i + 1;
            if ((rc = decode_file(&m->files[i], json_array_get(files, i), i, why, whylen)))
                return rc;
        }
    }
    return 0;
}

int manifest_decode(manifest_t *m, const char *buf, size_t len, char *why, size_t whylen)
{
    why_printf(why, whylen, "%s", "");
    if (len > MANIFEST_MAX_BYTES) {
        why_printf(why, whylen, "manifest larger than %u bytes", (unsigned)MANIFEST_MAX_BYTES);
        return -EMSGSIZE;
    }
    json_error_t jerr;
    /* Not JSON_DECODE_ANY (the root must be an object); jansson rejects NUL in strings by default. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        why_printf(why, whylen, "not valid JSON: %s (byte %d)", jerr.text, jerr.position);
        return -EINVAL;
    }
    manifest_t t;
    manifest_init(&t);
    int rc = decode_root(&t, root, why, whylen);
    json_decref(root);
    if (!rc)
        rc = manifest_validate(&t, why, whylen);
    if (!rc) {
        char *canon = NULL;
        size_t clen = 0;
        encode_valid(&t, &canon, &clen);
        if (clen != len || memcmp(canon, buf, len) != 0) {
            size_t at = 0;
            while (at < len && at < clen && canon[at] == buf[at])
                at++;
            why_printf(why, whylen, "not in canonical form (differs at byte %zu: sorted keys, no white space)", at);
            rc = -EINVAL;
        }
        free(canon);
    }
    if (rc) {
        manifest_release(&t);
        return rc;
    }
    manifest_release(m);
    *m = t;
    return 0;
}

void manifest_id(const char *buf, size_t len, hash_t *id) { hash_sha256(buf, len, id); }

ssize_t manifest_find(const manifest_t *m, const char *path)
{
    if (!path)
        return -1;
    size_t lo = 0, hi = m->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(path, m->files[mid].path);
        if (r == 0)
            return (ssize_t)mid;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}
