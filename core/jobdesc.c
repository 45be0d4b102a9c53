/*
 * jobdesc.c: the parser for `preon.job`, the small key = value file a researcher puts in a job
 * directory, and the checks shared with the manifest decoder.
 *
 * The file is untrusted (it arrives inside a job from any peer's user) and read by people, so the
 * parser is strict and explains itself: every rejection names the line and says what would have
 * been accepted. Strict matters for a second reason: the parsed values go into the manifest, whose
 * bytes name the job, so anything that parses here must also survive manifest_encode/decode. That
 * is why values must be UTF-8 without control characters (JSON strings), why output patterns may
 * not contain "." parts (they would never fnmatch a task's relative paths), and why one set of
 * field checks (jobdesc_check) serves both the parser and the manifest.
 *
 * Values are the rest of the line after '=' with surrounding blanks trimmed; there is no quoting
 * and no inline comment, so a command like `./mandel --tile $PREON_TASK > out.pgm # big` reaches
 * /bin/sh -c exactly as written.
 */
#include "core/jobdesc.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

enum jobdesc_key {
    KEY_COMMAND,
    KEY_TASKS,
    KEY_OUTPUTS,
    KEY_TIMEOUT,
    KEY_MEMORY,
    KEY_DISK,
    KEY_PROCESSES,
    KEY_REPLICAS,
    KEY_QUORUM,
    KEY_MAX_REPLICAS,
    KEY_OS,
    KEY_ARCH,
    KEY_NETWORK,
    KEY_GRACE,
    KEY_COUNT
};

static const char *const key_names[KEY_COUNT] = {
    "command", "tasks", "outputs", "timeout", "memory", "disk",
    "processes", "replicas", "quorum", "max-replicas", "os", "arch", "network", "grace",
};

#define KNOWN_KEYS                                                                                             \
    "command, tasks, outputs, timeout, memory, disk, processes, replicas, quorum, max-replicas, os, arch, network, " \
    "grace"
#define DEFAULT_TIMEOUT_MS (3600ull * 1000)
#define DEFAULT_BYTES (1024ull * 1024 * 1024)
#define DEFAULT_PROCESSES 64
/* os and arch are compared with uname-like names; keep them short tokens. */
#define TOKEN_MAX 64
#define JOBDESC_STR_(x) #x
#define JOBDESC_STR(x) JOBDESC_STR_(x)
/* How much of an offending value a message quotes. */
#define QUOTE_MAX 60


/* Strict UTF-8 (RFC 3629), the same rule jansson applies to JSON strings. */
bool jobdesc_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        size_t more;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong 2-byte lead, or past U+10FFFF */
        }
        if ((size_t)(end - p) < more)
            return false;
        for (size_t i = 0; i < more; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        p += more;
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Copies at most QUOTE_MAX bytes of s for a message, cut on a UTF-8 character boundary. */
static const char *quote(const char *s, size_t len, char buf[QUOTE_MAX + 4])
{
    if (len <= QUOTE_MAX) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        return buf;
    }
    size_t n = QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, s, n);
    memcpy(buf + n, "...", 4);
    return buf;
}

/* ---- value syntax (shared with argv parsing) ---- */

/* Decimal digits only: no sign, no blanks, no base prefix (strtoull accepts all three). */
static int parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    int rc = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            rc = -ERANGE; /* keep scanning so "99999999999999999999x" is still a syntax error */
    }
    *sp = s;
    *out = v;
    return rc;
}

static int parse_count(const char *s, uint64_t *out)
{
    int rc = parse_digits(&s, out);
    if (rc == -EINVAL || *s != '\0')
        return -EINVAL;
    return rc;
}

int jobdesc_parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    int rc = parse_digits(&s, &v);
    if (rc == -EINVAL)
        return rc;
    while (*s == ' ')
        s++;
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        s++;
        if (*s == 'i' || *s == 'I') { /* KiB: the i needs the B */
            s++;
            if (*s != 'b' && *s != 'B')
                return -EINVAL;
        }
    }
    if (*s == 'b' || *s == 'B')
        s++;
    if (*s != '\0')
        return -EINVAL;
    if (rc)
        return rc;
    /* Sizes travel as JSON integers (signed 64-bit) in the manifest. */
    if (shift && v > (uint64_t)INT64_MAX >> shift)
        return -ERANGE;
    v <<= shift;
    if (v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = v;
    return 0;
}

char *jobdesc_format_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char units[] = "KMGT";
    int u = -1; /* the largest unit whose tenths still show bytes, rounded, below 1024 of it */
    while (u < 3 && bytes >= (1ull << (10 * (u + 2))) - (1ull << (10 * (u + 1))) / 20)
        u++;
    if (u < 0)
        snprintf(buf, cap, "%lluB", (unsigned long long)bytes);
    else if (bytes % (1ull << (10 * (u + 1))) == 0)
        snprintf(buf, cap, "%llu%c", (unsigned long long)(bytes >> (10 * (u + 1))), units[u]);
    else
        snprintf(buf, cap, "%.1f%c", (double)bytes / (double)(1ull << (10 * (u + 1))), units[u]);
    return buf;
}

int jobdesc_parse_duration(const char *s, uint64_t *out_ms)
{
    uint64_t v;
    int rc = parse_digits(&s, &v);
    if (rc == -EINVAL)
        return rc;
    while (*s == ' ')
        s++;
    uint64_t unit = 1000;
    switch (*s) {
    case 's': s++; break;
    case 'm': unit = 60 * 1000; s++; break;
    case 'h': unit = 3600 * 1000; s++; break;
    case 'd': unit = 86400 * 1000; s++; break;
    default: break;
    }
    if (*s != '\0')
        return -EINVAL;
    if (rc)
        return rc;
    if (__builtin_mul_overflow(v, unit, &v) || v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out_ms = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

/* ---- field checks (shared by the parser and jobdesc_check) ---- */

/* Free text (command): UTF-8, no control characters but tab, at most JOBDESC_MAX_VALUE bytes. */
static const char *check_text(const char *s)
{
    size_t len = strlen(s);
    if (len > JOBDESC_MAX_VALUE)
        return "longer than " JOBDESC_STR(JOBDESC_MAX_VALUE) " bytes";
    if (!jobdesc_utf8_valid(s, len))
        return "not valid UTF-8";
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return "contains a control character";
    return NULL;
}

static const char *check_command(const char *s)
{
    if (!s || !*s)
        return "empty command";
    const char *err = check_text(s);
    if (err)
        return err;
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (!s[i])
        return "empty command";
    return NULL;
}

/*
 * An output pattern is matched with fnmatch(FNM_PATHNAME) against paths relative to the task dir
 * such as "out/img.pgm", so only relative, normalised patterns can ever match; anything else is a
 * mistake worth reporting now rather than an empty result later.
 */
static const char *check_pattern(const char *p)
{
    size_t len = strlen(p);
    if (len == 0)
        return "empty output pattern";
    if (len > JOBDESC_MAX_VALUE)
        return "output pattern longer than " JOBDESC_STR(JOBDESC_MAX_VALUE) " bytes";
    if (!jobdesc_utf8_valid(p, len))
        return "output pattern is not valid UTF-8";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return "output pattern contains a blank or control character";
    if (p[0] == '/')
        return "output pattern must be relative to the task directory (no leading '/')";
    const char *c = p;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0)
            return "output pattern has an empty part ('//' or a trailing '/')";
        if (n == 1 && c[0] == '.')
            return "output pattern has a '.' part";
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return "output pattern has a '..' part";
        if (!slash)
            break;
        c = slash + 1;
    }
    return NULL;
}

static const char *check_token(const char *s)
{
    size_t len = strlen(s);
    if (len == 0)
        return "empty";
    if (len > TOKEN_MAX)
        return "longer than " JOBDESC_STR(TOKEN_MAX) " characters";
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.' || c == '+'))
            return "may contain only letters, digits and _ - . +";
    }
    return NULL;
}

int jobdesc_check(const jobdesc_t *d, char *why, size_t whylen)
{
    const char *err;
    if ((err = check_command(d->command)) != NULL) {
        why_printf(why, whylen, "command: %s", err);
        return -EINVAL;
    }
    if (d->tasks < 1 || d->tasks > JOBDESC_MAX_TASKS) {
        why_printf(why, whylen, "tasks must be 1..%d (got %u)", JOBDESC_MAX_TASKS, d->tasks);
        return -EINVAL;
    }
    if (d->n_outputs > JOBDESC_MAX_OUTPUTS || (d->n_outputs && !d->outputs)) {
        why_printf(why, whylen, "more than %d output patterns", JOBDESC_MAX_OUTPUTS);
        return -EINVAL;
    }
    for (size_t i = 0; i < d->n_outputs; i++) {
        if (!d->outputs[i] || (err = check_pattern(d->outputs[i])) != NULL) {
            why_printf(why, whylen, "outputs[%zu]: %s", i, d->outputs[i] ? err : "missing");
            return -EINVAL;
        }
    }
    if (d->timeout_ms < 1 || d->timeout_ms > JOBDESC_MAX_TIMEOUT_MS) {
        why_printf(why, whylen, "timeout must be 1ms..7d (got %llu ms)", (unsigned long long)d->timeout_ms);
        return -EINVAL;
    }
    if (d->grace_ms > JOBDESC_MAX_GRACE_MS) {
        why_printf(why, whylen, "grace must be at most 1h (got %llu ms)", (unsigned long long)d->grace_ms);
        return -EINVAL;
    }
    if (d->memory_bytes < JOBDESC_MIN_BYTES || d->memory_bytes > (uint64_t)INT64_MAX) {
        why_printf(why, whylen, "memory must be at least 1M (got %llu bytes)", (unsigned long long)d->memory_bytes);
        return -EINVAL;
    }
    if (d->disk_bytes < JOBDESC_MIN_BYTES || d->disk_bytes > (uint64_t)INT64_MAX) {
        why_printf(why, whylen, "disk must be at least 1M (got %llu bytes)", (unsigned long long)d->disk_bytes);
        return -EINVAL;
    }
    if (d->processes < 1 || d->processes > JOBDESC_MAX_PROCESSES) {
        why_printf(why, whylen, "processes must be 1..%d (got %u)", JOBDESC_MAX_PROCESSES, d->processes);
        return -EINVAL;
    }
    if (d->replicas < 1 || d->replicas > JOBDESC_MAX_REPLICAS) {
        why_printf(why, whylen, "replicas must be 1..%d (got %u)", JOBDESC_MAX_REPLICAS, d->replicas);
        return -EINVAL;
    }
    if (d->quorum > d->replicas) {
        why_printf(why, whylen, "quorum must be 1..replicas (%u) (got %u)", d->replicas, d->quorum);
        return -EINVAL;
    }
    if (d->adaptive && d->replicas != 2) {
        why_printf(why, whylen, "adaptive replication runs 2 replicas (got %u)", d->replicas);
        return -EINVAL;
    }
    if (d->max_replicas && (d->max_replicas < d->replicas || d->max_replicas > JOBDESC_MAX_MAX_REPLICAS)) {
        why_printf(why, whylen, "max-replicas must be replicas (%u)..%d (got %u)", d->replicas,
                   JOBDESC_MAX_MAX_REPLICAS, d->max_replicas);
        return -EINVAL;
    }
    if (d->os && (err = check_token(d->os)) != NULL) {
        why_printf(why, whylen, "os: %s", err);
        return -EINVAL;
    }
    if (d->arch && (err = check_token(d->arch)) != NULL) {
        why_printf(why, whylen, "arch: %s", err);
        return -EINVAL;
    }
    return 0;
}

/* ---- lifecycle ---- */

void jobdesc_init(jobdesc_t *d)
{
    memset(d, 0, sizeof(*d));
    d->command = xstrdup(JOBDESC_DEFAULT_COMMAND);
    d->tasks = 1;
    d->timeout_ms = DEFAULT_TIMEOUT_MS;
    d->memory_bytes = DEFAULT_BYTES;
    d->disk_bytes = DEFAULT_BYTES;
    d->processes = DEFAULT_PROCESSES;
    d->replicas = 1;
    d->network = false;
}

static void free_outputs(jobdesc_t *d)
{
    for (size_t i = 0; i < d->n_outputs; i++)
        free(d->outputs[i]);
    free(d->outputs);
    d->outputs = NULL;
    d->n_outputs = 0;
}

/* Leaves d zeroed, so a second release is harmless. */
void jobdesc_release(jobdesc_t *d)
{
    free(d->command);
    free_outputs(d);
    free(d->os);
    free(d->arch);
    memset(d, 0, sizeof(*d));
}

/* dst is treated as uninitialised storage: it is overwritten, not released first. */
void jobdesc_copy(jobdesc_t *dst, const jobdesc_t *src)
{
    *dst = *src;
    dst->command = src->command ? xstrdup(src->command) : NULL;
    dst->outputs = NULL;
    if (src->n_outputs) {
        dst->outputs = xcalloc(src->n_outputs, sizeof(char *));
        for (size_t i = 0; i < src->n_outputs; i++)
            dst->outputs[i] = xstrdup(src->outputs[i]);
    }
    dst->os = src->os ? xstrdup(src->os) : NULL;
    dst->arch = src->arch ? xstrdup(src->arch) : NULL;
}

/* ---- the file ---- */

/* Parses the space-separated pattern list in v (NUL-terminated, trimmed) into d->outputs. */
static int set_outputs(jobdesc_t *d, const char *v, char *err, size_t errlen)
{
    char **pats = NULL;
    size_t n = 0;
    int rc = -EINVAL;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " \t");
        char q[QUOTE_MAX + 4];
        if (n == JOBDESC_MAX_OUTPUTS) {
            snprintf(err, errlen, "more than %d output patterns", JOBDESC_MAX_OUTPUTS);
            goto error;
        }
        if (n == 0)
            pats = xcalloc(JOBDESC_MAX_OUTPUTS, sizeof(char *));
        pats[n] = xstrndup(p, len);
        const char *bad = check_pattern(pats[n]);
        n++;
        if (bad) {
            snprintf(err, errlen, "'%s': %s", quote(p, len, q), bad);
            goto error;
        }
        p += len;
    }
    if (n == 0) {
        snprintf(err, errlen, "no patterns (leave 'outputs' out to keep every file)");
        goto error;
    }
    free_outputs(d);
    d->outputs = xreallocarray(pats, n, sizeof(char *));
    d->n_outputs = n;
    return 0;

error:
    for (size_t i = 0; i < n; i++)
        free(pats[i]);
    free(pats);
    return rc;
}

/* Applies one key's value v (NUL-terminated, trimmed, UTF-8, length-checked). */
static int set_value(jobdesc_t *d, enum jobdesc_key key, const char *v, char *err, size_t errlen)
{
    char q[QUOTE_MAX + 4];
    const char *bad;
    uint64_t n = 0;
    int rc = 0;
    switch (key) {
    case KEY_COMMAND:
        if ((bad = check_command(v)) != NULL) {
            snprintf(err, errlen, "%s", bad);
            return -EINVAL;
        }
        free(d->command);
        d->command = xstrdup(v);
        return 0;

    case KEY_TASKS:
    case KEY_PROCESSES:
    case KEY_REPLICAS:
        if (!strcmp(v, "adaptive")) { /* two replicas, but most tasks run once on a proven worker */
            d->replicas = 2;
            d->adaptive = true;
            return 0;
        }
        /* fall through */
    case KEY_QUORUM:
    case KEY_MAX_REPLICAS: {
        uint64_t max = key == KEY_TASKS         ? JOBDESC_MAX_TASKS
                       : key == KEY_PROCESSES   ? JOBDESC_MAX_PROCESSES
                       : key == KEY_MAX_REPLICAS ? JOBDESC_MAX_MAX_REPLICAS
                                                 : JOBDESC_MAX_REPLICAS;
        rc = parse_count(v, &n);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "'%s' is not a whole number (digits only)%s", quote(v, strlen(v), q),
                     key == KEY_REPLICAS ? ", nor adaptive" : "");
            return -EINVAL;
        }
        if (rc == -ERANGE || n < 1 || n > max) {
            snprintf(err, errlen, "must be 1..%llu (got %s)", (unsigned long long)max, quote(v, strlen(v), q));
            return -EINVAL;
        }
        if (key == KEY_TASKS)
            d->tasks = (uint32_t)n;
        else if (key == KEY_PROCESSES)
            d->processes = (uint32_t)n;
        else if (key == KEY_QUORUM)
            d->quorum = (uint32_t)n;
        else if (key == KEY_MAX_REPLICAS)
            d->max_replicas = (uint32_t)n;
        else {
            d->replicas = (uint32_t)n;
            d->adaptive = false;
        }
        return 0;
    }

    case KEY_OUTPUTS:
        return set_outputs(d, v, err, errlen);

    case KEY_TIMEOUT:
        rc = jobdesc_parse_duration(v, &n);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "'%s' is not a duration (examples: 90, 90s, 5m, 2h, 1d)", quote(v, strlen(v), q));
            return -EINVAL;
        }
        if (rc == -ERANGE || n < 1 || n > JOBDESC_MAX_TIMEOUT_MS) {
            snprintf(err, errlen, "must be between 1s and 7d (got %s)", quote(v, strlen(v), q));
            return -EINVAL;
        }
        d->timeout_ms = n;
        return 0;

    case KEY_MEMORY:
    case KEY_DISK:
        rc = jobdesc_parse_size(v, &n);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "'%s' is not a size (examples: 1048576, 512M, 2G, 1T)", quote(v, strlen(v), q));
            return -EINVAL;
        }
        if (rc == -ERANGE || n < JOBDESC_MIN_BYTES) {
            snprintf(err, errlen, "%s (got %s)", rc == -ERANGE ? "too large" : "must be at least 1M",
                     quote(v, strlen(v), q));
            return -EINVAL;
        }
        if (key == KEY_MEMORY)
            d->memory_bytes = n;
        else
            d->disk_bytes = n;
        return 0;

    case KEY_OS:
    case KEY_ARCH:
        if ((bad = check_token(v)) != NULL) {
            snprintf(err, errlen, "'%s' %s", quote(v, strlen(v), q), bad);
            return -EINVAL;
        }
        if (key == KEY_OS) {
            free(d->os);
            d->os = xstrdup(v);
        } else {
            free(d->arch);
            d->arch = xstrdup(v);
        }
        return 0;

    case KEY_GRACE:
        rc = jobdesc_parse_duration(v, &n);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "'%s' is not a duration (examples: 10, 30s, 5m)", quote(v, strlen(v), q));
            return -EINVAL;
        }
        if (rc == -ERANGE || n < 1000 || n > JOBDESC_MAX_GRACE_MS) {
            snprintf(err, errlen, "must be between 1s and 1h (got %s)", quote(v, strlen(v), q));
            return -EINVAL;
        }
        d->grace_ms = n;
        return 0;

    case KEY_NETWORK:
        if (parse_bool(v, &d->network) != 0) {
            snprintf(err, errlen, "'%s' is not yes or no", quote(v, strlen(v), q));
            return -EINVAL;
        }
        return 0;

    case KEY_COUNT:
        break;
    }
    return -EINVAL;
}

int jobdesc_parse(jobdesc_t *d, const char *text, size_t len, char *why, size_t whylen)
{
    why_printf(why, whylen, "%s", "");
    if (len > JOBDESC_MAX_BYTES) {
        why_printf(why, whylen, "larger than %d bytes", JOBDESC_MAX_BYTES);
        return -EMSGSIZE;
    }
    unsigned first_line[KEY_COUNT] = {0}; /* line a key was set on; 0 = not yet */
    char value[JOBDESC_MAX_VALUE + 1];
    char err[256];
    char q[QUOTE_MAX + 4];
    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 byte order mark from some editors */
        p += 3;

    for (unsigned line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (memchr(p, '\0', (size_t)(eol - p))) {
            why_printf(why, whylen, "line %u: NUL byte (is this a text file?)", line);
            return -EINVAL;
        }
        const char *b = p, *e = eol;
        p = next;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b == e || *b == '#')
            continue;
        if (!jobdesc_utf8_valid(b, (size_t)(e - b))) {
            why_printf(why, whylen, "line %u: not valid UTF-8", line);
            return -EINVAL;
        }
        for (const char *c = b; c < e; c++) {
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
                why_printf(why, whylen, "line %u: control character 0x%02x", line, (unsigned)(unsigned char)*c);
                return -EINVAL;
            }
        }
        const char *eq = memchr(b, '=', (size_t)(e - b));
        if (!eq) {
            why_printf(why, whylen, "line %u: expected 'key = value', got '%s'", line, quote(b, (size_t)(e - b), q));
            return -EINVAL;
        }
        const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
        while (ke > kb && is_blank(ke[-1]))
            ke--;
        while (vb < ve && is_blank(*vb))
            vb++;
        if (kb == ke) {
            why_printf(why, whylen, "line %u: empty key before '='", line);
            return -EINVAL;
        }
        enum jobdesc_key key = KEY_COUNT;
        for (int k = 0; k < KEY_COUNT; k++) {
            if (strlen(key_names[k]) == (size_t)(ke - kb) && memcmp(key_names[k], kb, (size_t)(ke - kb)) == 0) {
                key = (enum jobdesc_key)k;
                break;
            }
        }
        if (key == KEY_COUNT) {
            why_printf(why, whylen, "line %u: unknown key '%s' (known: " KNOWN_KEYS ")", line,
                    quote(kb, (size_t)(ke - kb), q));
            return -EINVAL;
        }
        if (first_line[key]) {
            why_printf(why, whylen, "line %u: duplicate key '%s' (first set on line %u)", line, key_names[key],
                    first_line[key]);
            return -EINVAL;
        }
        first_line[key] = line;
        size_t vlen = (size_t)(ve - vb);
        if (vlen > JOBDESC_MAX_VALUE) {
            why_printf(why, whylen, "line %u: %s: value longer than %d bytes", line, key_names[key], JOBDESC_MAX_VALUE);
            return -EINVAL;
        }
        if (vlen == 0 && key != KEY_COMMAND && key != KEY_OUTPUTS) {
            why_printf(why, whylen, "line %u: %s: empty value", line, key_names[key]);
            return -EINVAL;
        }
        memcpy(value, vb, vlen);
        value[vlen] = '\0';
        if (set_value(d, key, value, err, sizeof(err)) != 0) {
            why_printf(why, whylen, "line %u: %s: %s", line, key_names[key], err);
            return -EINVAL;
        }
    }
    /* keys that bound each other, once all are read */
    if (d->quorum > d->replicas) {
        why_printf(why, whylen, "line %u: quorum must be 1..replicas (%u) (got %u)", first_line[KEY_QUORUM],
                   d->replicas, d->quorum);
        return -EINVAL;
    }
    if (d->max_replicas && d->max_replicas < d->replicas) {
        why_printf(why, whylen, "line %u: max-replicas must be replicas (%u)..%d (got %u)",
                   first_line[KEY_MAX_REPLICAS], d->replicas, JOBDESC_MAX_MAX_REPLICAS, d->max_replicas);
        return -EINVAL;
    }
    return 0;
}

uint32_t jobdesc_quorum(const jobdesc_t *d) { return d->quorum ? d->quorum : d->replicas / 2 + 1; }

uint32_t jobdesc_max_replicas(const jobdesc_t *d) { return d->max_replicas ? d->max_replicas : 2 * d->replicas; }
