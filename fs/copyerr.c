/*
 * copyerr.c: the text of a staged job's list of copy errors, FS_COPY_ERR_FILE (docs/usage.md, "A
 * copy that failed part-way is never published"), written and read back. Pure: view.c reads and
 * writes the file. The file lives in the data directory and in the staged job, where the user (or
 * anything with the data directory) may have changed it, so reading it back trusts nothing: an
 * entry must be an object with a confined path and a reason; anything else counts as bad (the job
 * then waits until the file is removed). Fuzzed (tests/fuzz/fuzz_copyerr.c).
 */
#include <jansson.h>
#include <string.h>

#include "core/xalloc.h"
#include "fs/internal.h"

/* A JSON string of s: file names are bytes, JSON is UTF-8; bytes that are not valid UTF-8 show as
 * '?' (that entry's path then matches no file: only waiving clears it, never dropping it). */
json_t *fs__json_name(const char *s)
{
    json_t *js = json_string(s);
    if (js)
        return js;
    char *copy = xstrdup(s);
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    js = json_string(copy);
    free(copy);
    return js;
}

char *fs__cerr_format(const fs_copy_err_t *errs, size_t n, size_t more)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:o, s:o}", "path", fs__json_name(errs[i].path), "why",
                                             fs__json_name(errs[i].why)));
    json_t *doc = json_pack("{s:o, s:I}", "errors", arr, "more", (json_int_t)more);
    char *text = doc && json_array_size(arr) == n ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    return text;
}

bool fs__cerr_path_ok(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > FS_MAX_COPY_ERR_PATH || p[0] == '/')
        return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    for (const char *part = p; part;) {
        const char *slash = strchr(part, '/');
        size_t n = slash ? (size_t)(slash - part) : strlen(part);
        if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.'))
            return false;
        part = slash ? slash + 1 : NULL;
    }
    return true;
}

size_t fs__cerr_parse(const char *text, size_t len, void (*add)(void *arg, const char *path, const char *why),
                      void *arg, size_t *more)
{
    size_t bad = 0;
    *more = 0;
    json_t *doc = text && len <= FS_MAX_COPY_ERR_FILE ? json_loadb(text, len, 0, NULL) : NULL;
    json_t *arr = json_object_get(doc, "errors"), *m = json_object_get(doc, "more");
    if (!json_is_array(arr) || (m && !json_is_integer(m)))
        bad++;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *p = json_string_value(json_object_get(e, "path"));
        const char *why = json_string_value(json_object_get(e, "why"));
        if (p && why && fs__cerr_path_ok(p))
            add(arg, p, why);
        else
            bad++;
    }
    if (json_is_integer(m) && json_integer_value(m) > 0)
        *more = json_integer_value(m) < FS_MAX_COPY_ERR_MORE ? (size_t)json_integer_value(m) : FS_MAX_COPY_ERR_MORE;
    json_decref(doc);
    return bad;
}
