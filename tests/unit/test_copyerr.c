/* Unit tests for fs/copyerr.c: a staged job's list of copy errors (.preon-copy-errors), written and
 * read back; what the file says is untrusted (the data directory, or a copy into jobs/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/xalloc.h"
#include "fs/internal.h"

typedef struct kept {
    char path[8][64], why[8][64];
    size_t n;
} kept_t;

static void keep(void *arg, const char *path, const char *why)
{
    kept_t *k = arg;
    assert_true(k->n < 8);
    snprintf(k->path[k->n], sizeof(k->path[0]), "%s", path);
    snprintf(k->why[k->n], sizeof(k->why[0]), "%s", why);
    k->n++;
}

static size_t parse(const char *text, kept_t *k, size_t *more)
{
    memset(k, 0, sizeof(*k));
    return fs__cerr_parse(text, strlen(text), keep, k, more);
}

static void copyerr_round_trip(void **state)
{
    (void)state;
    fs_copy_err_t e[2] = {{.path = "lnk", .why = "symlink lnk -> /etc/passwd: refused"},
                          {.path = "data/big", .why = "write data/big: No space left on device"}};
    char *text = fs__cerr_format(e, 2, 5);
    assert_non_null(text);
    kept_t k;
    size_t more = 0;
    assert_int_equal(parse(text, &k, &more), 0);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.path[0], "lnk");
    assert_string_equal(k.why[1], "write data/big: No space left on device");
    assert_int_equal(more, 5);
    free(text);
    /* A name that is not UTF-8 is written with '?' for its bytes (it then matches no file). */
    fs_copy_err_t odd = {.path = "caf\xe9", .why = "write caf\xe9: I/O error"};
    text = fs__cerr_format(&odd, 1, 0);
    assert_int_equal(parse(text, &k, &more), 0);
    assert_string_equal(k.path[0], "caf?");
    free(text);
}

/* Entries that would name something outside the job, or are not entries, are counted bad and not
 * kept (the job then waits until the file is removed); the count past the cap is bounded. */
static void copyerr_hostile_entries_are_bad(void **state)
{
    (void)state;
    kept_t k;
    size_t more = 0;
    assert_int_equal(parse("{\"errors\":[{\"path\":\"../../etc/passwd\",\"why\":\"x\"},{\"path\":\"/etc/passwd\",\"why\":\"x\"},"
                           "{\"path\":\"a/./b\",\"why\":\"x\"},{\"path\":\"a//b\",\"why\":\"x\"},{\"path\":\"a\\u0001\",\"why\":\"x\"},"
                           "{\"path\":\"\",\"why\":\"x\"},{\"path\":\"ok\"},{\"why\":\"x\"},7,{\"path\":1,\"why\":\"x\"},"
                           "{\"path\":\"data/ok\",\"why\":\"kept\"}],\"more\":0}",
                           &k, &more),
                     10);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.path[0], "data/ok");
    assert_int_equal(parse("", &k, &more), 1);
    assert_int_equal(parse("[]", &k, &more), 1);
    assert_int_equal(parse("{\"errors\":{}}", &k, &more), 1);
    assert_int_equal(parse("{\"errors\":[],\"more\":\"3\"}", &k, &more), 1);
    assert_int_equal(parse("{\"errors\":[{\"path\":\"a\\u0000b\",\"why\":\"x\"}]}", &k, &more), 1); /* NUL: not JSON here */
    assert_int_equal(parse("{\"errors\":[],\"more\":99999999999999}", &k, &more), 0);
    assert_int_equal(more, FS_MAX_COPY_ERR_MORE);
    assert_int_equal(parse("{\"errors\":[],\"more\":-4}", &k, &more), 0);
    assert_int_equal(more, 0);
    char *big = xmalloc(FS_MAX_COPY_ERR_FILE + 2);
    memset(big, ' ', FS_MAX_COPY_ERR_FILE + 1);
    memcpy(big, "{\"errors\":[]}", 13);
    big[FS_MAX_COPY_ERR_FILE + 1] = '\0';
    assert_int_equal(parse(big, &k, &more), 1); /* over the size read back */
    free(big);
    char p[FS_MAX_COPY_ERR_PATH + 2];
    memset(p, 'a', sizeof(p));
    p[FS_MAX_COPY_ERR_PATH] = '\0';
    assert_true(fs__cerr_path_ok(p));
    p[FS_MAX_COPY_ERR_PATH] = 'a';
    p[FS_MAX_COPY_ERR_PATH + 1] = '\0';
    assert_false(fs__cerr_path_ok(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(copyerr_round_trip),
        cmocka_unit_test(copyerr_hostile_entries_are_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
