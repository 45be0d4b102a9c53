/**
 * @file sdnotify.h  Tells systemd how a service is doing (the sd_notify protocol, without libsystemd).
 *
 * systemd gives a Type=notify service the address of a datagram socket in $NOTIFY_SOCKET (a path, or
 * an abstract name written with a leading '@'); the service sends "READY=1" once it works and
 * "STOPPING=1" when it begins to stop (systemd's sd_notify(3) documents the messages). The address
 * is taken out of the environment at start (sd_notify's unset_environment), so that no child of the
 * peer (a task's keeper, a helper libfuse runs) inherits it and speaks for the service.
 */
#ifndef PREON_CORE_SDNOTIFY_H
#define PREON_CORE_SDNOTIFY_H

/** Takes $NOTIFY_SOCKET out of the environment: its value (owned, free it), or NULL if it was not set
 *  or empty (not run by systemd). */
char *sdnotify_take(void);

/** Sends state (e.g. "READY=1") to addr, as sdnotify_take gave it, without blocking. 0 if it was sent
 *  or addr is NULL; -errno if it could not be sent (-EINVAL: an address that is neither an absolute
 *  path nor '@' and an abstract name, or too long for a sockaddr_un). */
int sdnotify_send(const char *addr, const char *state);

#endif
