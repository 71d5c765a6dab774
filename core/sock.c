/* Unix stream sockets and descriptors passed over them (SCM_RIGHTS), as
 * the OCI runtime's --console-socket uses them: socket(2), bind(2),
 * listen(2), connect(2), accept4(2), sendmsg(2), recvmsg(2), unix(7). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"

#define NAME_MAX_SENT 4096

/* A sockaddr_un for `path`; raises when the path does not fit. */
static socklen_t unix_address(lua_State *L, int arg, struct sockaddr_un *addr) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len > 0 && len < sizeof addr->sun_path, arg, "socket path too long");
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, len);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* unix_listen(path) -> fd | fail, msg, errno: a listening socket bound at
 * path (which must not exist). */
static int sock_unix_listen(lua_State *L) {
  struct sockaddr_un addr;
  socklen_t len = unix_address(L, 1, &addr);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return lbox_fail(L, "socket", NULL);
  if (bind(fd, (struct sockaddr *)&addr, len) < 0 || listen(fd, 16) < 0) {
    int err = errno;
    close(fd);
    return lbox_fail_errno(L, err, "bind", addr.sun_path);
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* unix_connect(path) -> fd | fail, msg, errno. */
static int sock_unix_connect(lua_State *L) {
  struct sockaddr_un addr;
  socklen_t len = unix_address(L, 1, &addr);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return lbox_fail(L, "socket", NULL);
  int r;
  do
    r = connect(fd, (struct sockaddr *)&addr, len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    close(fd);
    return lbox_fail_errno(L, err, "connect", addr.sun_path);
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* accept(fd) -> connection fd | fail, msg, errno. */
static int sock_accept(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  int conn;
  do
    conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  while (conn < 0 && errno == EINTR);
  if (conn < 0)
    return lbox_fail(L, "accept", NULL);
  lua_pushinteger(L, conn);
  return 1;
}

/* send_fd(sock, fd [, name]) -> true | fail, msg, errno: descriptor fd
 * over socket sock, with `name` (default "fd") as the message's bytes, as
 * runc sends a console's master. */
static int sock_send_fd(lua_State *L) {
  int sock = lbox_check_fd(L, 1), fd = lbox_check_fd(L, 2);
  size_t len;
  const char *name = luaL_optlstring(L, 3, "fd", &len);
  luaL_argcheck(L, len > 0 && len <= NAME_MAX_SENT, 3, "name must be 1 to 4096 bytes");
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = { .iov_base = (void *)name, .iov_len = len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control.buf, .msg_controllen = sizeof control.buf };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t n;
  do
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return lbox_fail(L, "sendmsg", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* recv_fd(sock) -> fd, name | fail, msg, errno: a descriptor sent with
 * send_fd (close-on-exec here); fail with EBADMSG when the message has none. */
static int sock_recv_fd(lua_State *L) {
  int sock = lbox_check_fd(L, 1);
  char name[NAME_MAX_SENT];
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  struct iovec iov = { .iov_base = name, .iov_len = sizeof name };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control.buf, .msg_controllen = sizeof control.buf };
  ssize_t n;
  do
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return lbox_fail(L, "recvmsg", NULL);
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == NULL || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
    return lbox_fail_errno(L, EBADMSG, "recvmsg", NULL);
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  lua_pushinteger(L, fd);
  lua_pushlstring(L, name, (size_t)n);
  return 2;
}

static const luaL_Reg sock_funcs[] = {
  {"accept", sock_accept},
  {"recv_fd", sock_recv_fd},
  {"send_fd", sock_send_fd},
  {"unix_connect", sock_unix_connect},
  {"unix_listen", sock_unix_listen},
  {NULL, NULL}
};

void lbox_open_sock(lua_State *L) {
  luaL_setfuncs(L, sock_funcs, 0);
}
