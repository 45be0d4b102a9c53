/*
 * fuzz_peers.c: libFuzzer target for the pool peers a peer remembers across restarts, DATA/peers
 * (pool/wire.h, wire_peers_parse; `make fuzz`): a file anyone with the data directory may have
 * changed, read at start-up.
 *
 * Reading must never crash or leak; every URL it keeps is "http://" and more, at most
 * WIRE_MAX_PEER_URL bytes, with no control byte, blank or DEL; the lines it keeps and refuses
 * together are the input's non-empty lines; and what it keeps, written as the peer writes it,
 * reads back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "pool/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct urls {
    char **u;
    size_t n;
} urls_t;

static void keep(void *arg, const char *url)
{
    urls_t *l = arg;
    size_t len = strlen(url);
    if (len <= 7 || len > WIRE_MAX_PEER_URL || strncmp(url, "http://", 7) != 0)
        abort();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            abort();
    l->u = xreallocarray(l->u, l->n + 1, sizeof(char *));
    l->u[l->n++] = xstrdup(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    urls_t a = {0}, b = {0};
    size_t bad = wire_peers_parse((const char *)data, size, keep, &a);
    size_t lines = 0;
    for (size_t pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        lines += n > 0;
        pos += n + 1;
    }
    if (a.n + bad != lines)
        abort();
    char *text = wire_peers_format(a.u, a.n);
    if (wire_peers_parse(text, strlen(text), keep, &b) != 0 || b.n != a.n)
        abort();
    for (size_t i = 0; i < a.n; i++)
        if (strcmp(a.u[i], b.u[i]) != 0)
            abort();
    free(text);
    for (size_t i = 0; i < a.n; i++)
        free(a.u[i]);
    for (size_t i = 0; i < b.n; i++)
        free(b.u[i]);
    free(a.u);
    free(b.u);
    return 0;
}
