/*
 * fuzz_msg.c: libFuzzer target for exec__msg_decode and exec__msg_int (`make fuzz`).
 *
 * A sandbox's keeper reads the messages of its agent, which runs inside the sandbox beside the
 * task (exec/keeper.c), and preon reads the keeper's: decoding must never crash, read past the
 * buffer or accept a message whose fields are not each ended by a NUL inside it. What it accepts
 * must encode back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > EXEC_MSG_MAX + 16)
        return 0;
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    exec_msg_t m;
    if (exec__msg_decode(buf, size, &m) == 0) {
        for (int i = 0; i < m.nf; i++) {
            if (m.f[i] < buf || m.f[i] >= buf + size || !memchr(m.f[i], '\0', (size_t)(buf + size - m.f[i])))
                abort();
            long long v;
            if (exec__msg_int(m.f[i], -1000000, 1000000, &v) == 0 && (v < -1000000 || v > 1000000))
                abort();
        }
        char *again = malloc(size);
        int len = exec__msg_encode(m.type, m.f, m.nf, again, size);
        if (len != (int)size || memcmp(again, data, size) != 0)
            abort();
        free(again);
    }
    free(buf);
    return 0;
}
