/*
 * fuzz_progress.c: libFuzzer target for what `preon submit --wait`, `preon status` and `preon wait`
 * read from a mount's status files (fs/progress.c; `make fuzz`): fs__jstat_parse, the progress line
 * and fs__status_json. The text is the peer's, but it carries what other peers and users named
 * (job names, reasons, keys), and a terminal shows it.
 *
 * The first byte is the terminal's width, the rest the status text. Never a crash or a leak; no
 * control byte in a value read; the bar fits the width in columns (UTF-8 characters) and is no
 * longer than its buffer; the JSON is an object that dumps and loads back equal.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_control(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned width = data[0];
    char *text = malloc(size);
    if (!text)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    fs_jstat_t s;
    fs__jstat_parse(text, &s);
    no_control(s.name, sizeof(s.name));
    no_control(s.id, sizeof(s.id));
    no_control(s.state, sizeof(s.state));
    no_control(s.reason, sizeof(s.reason));
    no_control(s.why_waiting, sizeof(s.why_waiting));
    (void)fs__jstat_over(&s);

    char buf[512];
    uint64_t elapsed = (uint64_t)size * 977 * 1000;
    size_t n = fs__progress_line(s.name, &s, elapsed, width < 10 ? 0 : width, buf, sizeof(buf));
    if (n >= sizeof(buf) || strlen(buf) != n)
        abort();
    if (width >= 10) {
        unsigned cols = 0;
        for (size_t i = 0; i < n; i++)
            cols += ((unsigned char)buf[i] & 0xc0) != 0x80;
        if (cols > width)
            abort();
    }

    json_t *o = fs__status_json(text);
    if (!json_is_object(o))
        abort();
    char *dump = json_dumps(o, JSON_COMPACT);
    json_error_t err;
    json_t *back = dump ? json_loads(dump, 0, &err) : NULL;
    if (!back || !json_equal(o, back))
        abort();
    json_decref(back);
    free(dump);
    json_decref(o);
    free(text);
    return 0;
}
