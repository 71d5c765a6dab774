/* Whether a port of the host is taken, found the way a program that wanted
 * it would: by binding it. Reading /proc/net/tcp instead walks the whole
 * established hash table (some 2 ms per file on a large host). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

static const char *const port_protocols[] = {"tcp", "udp", NULL};

/* port_in_use(protocol, port) -> true | false | fail, msg, errno: would
 * binding `port` ("tcp" or "udp") on all of the host's IPv4 addresses fail
 * with EADDRINUSE? For tcp with SO_REUSEADDR, as docker's proxy and most
 * servers bind: a listening socket holds the port, a closed connection's
 * TIME_WAIT does not. The probe's socket is closed at once. See bind(2),
 * socket(7). */
static int port_in_use(lua_State *L) {
  int protocol = luaL_checkoption(L, 1, NULL, port_protocols);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "not a port");
  int fd = socket(AF_INET, (protocol == 0 ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return lbox_fail(L, "socket", port_protocols[protocol]);
  int on = 1;
  if (protocol == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
    int err = errno;
    close(fd);
    return lbox_fail_errno(L, err, "setsockopt", "SO_REUSEADDR");
  }
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = htons((uint16_t)port);
  int bound = bind(fd, (struct sockaddr *)&address, sizeof address);
  int err = errno;
  close(fd);
  if (bound == 0 || err == EADDRINUSE) {
    lua_pushboolean(L, bound != 0);
    return 1;
  }
  return lbox_fail_errno(L, err, "bind", port_protocols[protocol]);
}

static const luaL_Reg port_funcs[] = {
  {"port_in_use", port_in_use},
  {NULL, NULL}
};

void lbox_open_port(lua_State *L) {
  luaL_setfuncs(L, port_funcs, 0);
}
