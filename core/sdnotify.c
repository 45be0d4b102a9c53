/*
 * sdnotify.c: the sd_notify protocol by hand (core/sdnotify.h): one datagram on an AF_UNIX socket.
 * A few lines, so preon needs no libsystemd, and works the same without systemd.
 */
#include "core/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/xalloc.h"

char *sdnotify_take(void)
{
    const char *v = getenv("NOTIFY_SOCKET");
    char *addr = v && *v ? xstrdup(v) : NULL;
    unsetenv("NOTIFY_SOCKET");
    return addr;
}

int sdnotify_send(const char *addr, const char *state)
{
    if (!addr)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(addr);
    /* A path needs room for its NUL (as systemd's own sd_notify); an abstract name fills sun_path. */
    if ((addr[0] != '/' && addr[0] != '@') || len < 2 || len > sizeof(sa.sun_path) ||
        (addr[0] == '/' && len == sizeof(sa.sun_path)))
        return -EINVAL;
    memcpy(sa.sun_path, addr, len);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract name */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}
