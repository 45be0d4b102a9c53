/*
 * test_mntopt.c: unit tests for core/mntopt.c, the mount options (-o) of preon mount, mount(8),
 * mount.fuse3 and /etc/fstab as long options, and the mount helper's argv.
 */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/mntopt.h"

static const struct option known[] = {
    {"foreground", no_argument, NULL, 'f'},      {"data", required_argument, NULL, 'd'},
    {"slots", required_argument, NULL, 's'},     {"allow-network", no_argument, NULL, 'n'},
    {"tracker", required_argument, NULL, 'T'},   {"peer", required_argument, NULL, 'p'},
    {"quiet-ms", required_argument, NULL, 'q'},  {0}};

/* The expanded argv as one string, arguments separated by '|'. */
static void joined(const mntopt_t *m, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < m->argc; i++) {
        strncat(buf, m->argv[i], len - strlen(buf) - 1);
        if (i + 1 < m->argc)
            strncat(buf, "|", len - strlen(buf) - 1);
    }
    assert_null(m->argv[m->argc]);
}

static void expand_ok(const char *want, const char *want_flags, int argc, char **argv)
{
    mntopt_t m;
    char why[256] = "", got[1024];
    if (mntopt_expand(argc, argv, known, &m, why, sizeof(why)) != 0)
        fail_msg("refused: %s", why);
    joined(&m, got, sizeof(got));
    assert_string_equal(got, want);
    assert_string_equal(m.flags, want_flags);
    mntopt_release(&m);
}

static void expand_fails(const char *want_why, int argc, char **argv)
{
    mntopt_t m;
    char why[256] = "";
    assert_int_equal(mntopt_expand(argc, argv, known, &m, why, sizeof(why)), -EINVAL);
    if (!strstr(why, want_why))
        fail_msg("why: '%s', want '%s' in it", why, want_why);
    assert_null(m.argv);
}

static void mntopt_values_and_flags_become_long_options(void **state)
{
    char *a[] = {"mount", "-o", "tracker=http://t:1/announce,slots=4,data=/var/lib/p", "/mnt/p"};
    expand_ok("mount|--tracker=http://t:1/announce|--slots=4|--data=/var/lib/p|/mnt/p", "", 4, a);
    char *b[] = {"mount", "-oforeground,allow_network", "--slots", "2", "/m"}; /* '_' reads as '-' */
    expand_ok("mount|--foreground|--allow-network|--slots|2|/m", "", 5, b);
    char *c[] = {"mount", "-o", "peer=http://a:1,peer=http://b:2", "-o", "quiet_ms=5", "/m"}; /* repeated */
    expand_ok("mount|--peer=http://a:1|--peer=http://b:2|--quiet-ms=5|/m", "", 6, c);
    char *d[] = {"mount", "-o", "data=/a=b", "/m"}; /* only the first '=' splits */
    expand_ok("mount|--data=/a=b|/m", "", 4, d);
}

static void mntopt_generic_options_are_accepted(void **state)
{
    /* What mount.fuse3 adds (dev,suid), what mount(8) passes (rw, user's noexec,nosuid,nodev), and
     * fstab's own: none is an error, none becomes a preon option; ro is a flag, noexec ignored. */
    char *a[] = {"mount", "-o", "rw,dev,suid,defaults,noauto,_netdev,nofail,user,users,x-systemd.automount,"
                 "x-systemd.idle-timeout=60,comment=x,noatime,relatime,sync,slots=1", "/m"};
    expand_ok("mount|--slots=1|/m", "", 4, a);
    char *b[] = {"mount", "-o", "ro,noexec,nosuid,nodev", "/m"};
    expand_ok("mount|/m", "ro", 4, b);
    char *c[] = {"mount", "-o", "noexec", "-o", "", "/m"}; /* an empty list: nothing */
    expand_ok("mount|/m", "", 6, c);
}

/* A value never becomes another option: a comma or '=' inside double quotes or after a backslash
 * stays in it, a value starting with '-' (or "--", or empty) stays the value of its option (one
 * argument, --name=value), and the value of a long option given before is never read as -o. */
static void mntopt_values_cannot_inject_options(void **state)
{
    char *a[] = {"mount", "-o", "data=\"/srv/a,allow_network,pool=x\",slots=2", "/m"};
    expand_ok("mount|--data=/srv/a,allow_network,pool=x|--slots=2|/m", "", 4, a);
    char *b[] = {"mount", "-o", "data=/srv/a\\,allow_network,slots=2", "/m"};
    expand_ok("mount|--data=/srv/a,allow_network|--slots=2|/m", "", 4, b);
    char *c[] = {"mount", "-o", "data=-f,tracker=--,peer=", "/m"};
    expand_ok("mount|--data=-f|--tracker=--|--peer=|/m", "", 4, c);
    char *d[] = {"mount", "--data", "-oslots=9", "--tra", "-o", "-o", "slots=1", "/m"}; /* --tra: --tracker */
    expand_ok("mount|--data|-oslots=9|--tra|-o|--slots=1|/m", "", 8, d);
    char *e[] = {"mount", "-o", "data=\"/srv/a,slots=2", "/m"};
    expand_fails("double quote", 4, e);
    char *f[] = {"mount", "-o", "slots=2\\", "/m"};
    expand_fails("lone", 4, f);
    char *g[] = {"mount", "-o", "x-systemd.requires=a\\,b,X-mount.mkdir,comment=\"a,b\"", "/m"};
    expand_ok("mount|/m", "", 4, g);
}

static void mntopt_after_double_dash_nothing_is_expanded(void **state)
{
    char *a[] = {"mount", "-o", "slots=1", "--", "-o"};
    expand_ok("mount|--slots=1|--|-o", "", 5, a);
}

static void mntopt_bad_options_say_which(void **state)
{
    char *a[] = {"mount", "-o", "slots=1,bogus=2", "/m"};
    expand_fails("unknown mount option 'bogus'", 4, a);
    char *b[] = {"mount", "-o", "slots", "/m"};
    expand_fails("mount option 'slots' needs a value", 4, b);
    char *c[] = {"mount", "-o", "foreground=yes", "/m"};
    expand_fails("mount option 'foreground' takes no value", 4, c);
    char *d[] = {"mount", "/m", "-o"};
    expand_fails("-o needs", 3, d);
    char *e[] = {"mount", "-o", "=x", "/m"};
    expand_fails("unknown mount option", 4, e);
    static char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    char *f[] = {"mount", "-o", longname, "/m"};
    expand_fails("unknown mount option", 4, f);
}

static void mntopt_caps_the_number_of_options(void **state)
{
    static char many[MNTOPT_MAX_ITEMS * 10 + 16];
    many[0] = '\0';
    for (int i = 0; i <= MNTOPT_MAX_ITEMS; i++)
        strcat(many, i ? ",slots=1" : "slots=1");
    char *a[] = {"mount", "-o", many, "/m"};
    expand_fails("more than", 4, a);
    static char huge[MNTOPT_MAX_LEN + 2];
    memset(huge, 'x', sizeof(huge) - 1);
    char *b[] = {"mount", "-o", huge, "/m"};
    expand_fails("longer than", 4, b);
}

static void mntopt_helper_argv_as_mount_calls_it(void **state)
{
    mntopt_helper_t h;
    char why[256];
    char *a[] = {"/sbin/mount.fuse.preon", "preon", "/mnt/p", "-n", "-o", "rw,slots=2", "-t", "fuse.preon", "-v"};
    assert_int_equal(mntopt_helper_parse(9, a, &h, why, sizeof(why)), 0);
    assert_string_equal(h.dir, "/mnt/p");
    assert_int_equal(h.nopts, 1);
    assert_string_equal(h.opts[0], "rw,slots=2");
    assert_false(h.fake);
    char *b[] = {"preon", "preon", "/m", "-sf"};
    assert_int_equal(mntopt_helper_parse(4, b, &h, why, sizeof(why)), 0);
    assert_true(h.fake);
    char *c[] = {"preon", "preon"};
    assert_int_equal(mntopt_helper_parse(2, c, &h, why, sizeof(why)), -EINVAL);
    char *d[] = {"preon", "preon", "/m", "-N", "/proc/1/ns/mnt"};
    assert_int_equal(mntopt_helper_parse(5, d, &h, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "namespace"));
    char *e[] = {"preon", "preon", "/m", "extra"};
    assert_int_equal(mntopt_helper_parse(4, e, &h, why, sizeof(why)), -EINVAL);
    char *f[] = {"preon", "preon", "/m", "-o"};
    assert_int_equal(mntopt_helper_parse(4, f, &h, why, sizeof(why)), -EINVAL);
}

static void mntopt_knows_a_helper_call(void **state)
{
    static const char *const cmds[] = {"mount", "status", NULL};
    char *a[] = {"/usr/sbin/mount.fuse.preon", "preon", "/m"};
    assert_true(mntopt_is_helper_call(3, a, cmds));
    char *b[] = {"preon", "preon", "/m", "-o", "dev,suid"}; /* mount.fuse3's call */
    assert_true(mntopt_is_helper_call(5, b, cmds));
    char *c[] = {"preon", "mount", "/m", "-o", "slots=1"}; /* a command stays one */
    assert_false(mntopt_is_helper_call(5, c, cmds));
    char *d[] = {"preon", "stauts", "/m"}; /* a typo, no -o: the unknown command's message */
    assert_false(mntopt_is_helper_call(3, d, cmds));
    char *e[] = {"preon", "--help", "/m", "-o", "x"};
    assert_false(mntopt_is_helper_call(5, e, cmds));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mntopt_values_and_flags_become_long_options),
        cmocka_unit_test(mntopt_generic_options_are_accepted),
        cmocka_unit_test(mntopt_values_cannot_inject_options),
        cmocka_unit_test(mntopt_after_double_dash_nothing_is_expanded),
        cmocka_unit_test(mntopt_bad_options_say_which),
        cmocka_unit_test(mntopt_caps_the_number_of_options),
        cmocka_unit_test(mntopt_helper_argv_as_mount_calls_it),
        cmocka_unit_test(mntopt_knows_a_helper_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
