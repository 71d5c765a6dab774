/* lbox: a Lua 5.4 interpreter with lbox.core preloaded. Everything it does
 * is in lua/lbox/cli.lua; this stub only finds it and reports bugs. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

#include "core.h"

/* The Lua tree sits next to the binary (source tree) or under the install
 * prefix (bin/lbox -> share/lbox). `make` leaves a bytecode copy of each
 * module under build/: compiling the sources costs about 1 ms a run, a
 * quarter of a container's start. A copy is used only when it is not older
 * than its source, so an edited module never runs stale. Times are in whole
 * seconds: a copy made in the second its source was written (a fresh clone
 * and make) counts, or the copies would go unused exactly where they are new. */
static const char bootstrap[] =
  "local exe_dir, argv = ...\n"
  "local lfs = require 'lfs'\n"
  "for _, root in ipairs{exe_dir, exe_dir .. '/../share/lbox'} do\n"
  "  if lfs.attributes(root .. '/lua/lbox/cli.lua', 'mode') then\n"
  "    local template = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua'\n"
  "    table.insert(package.searchers, 2, function(name)\n"
  "      local source = package.searchpath(name, template)\n"
  "      if not source then return nil end\n"
  "      local compiled = root .. '/build/' .. source:sub(#root + 2)\n"
  "      local current = (lfs.attributes(compiled, 'modification') or 0)\n"
  "                      >= lfs.attributes(source, 'modification')\n"
  "      local path = current and compiled or source\n"
  "      return assert(loadfile(path)), path\n"
  "    end)\n"
  "    return require('lbox.cli').main(root, argv)\n"
  "  end\n"
  "end\n"
  "io.stderr:write('lbox: error: cannot find lbox\\'s Lua modules near ', exe_dir, '\\n')\n"
  "return 125\n";

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) {
    perror("lbox: readlink /proc/self/exe");
    return 125;
  }
  exe[n] = '\0';
  *strrchr(exe, '/') = '\0';

  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fputs("lbox: cannot create a Lua state\n", stderr);
    return 125;
  }
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_lbox_core);
  lua_setfield(L, -2, "lbox.core");
  lua_pop(L, 1);

  lua_pushcfunction(L, traceback);
  if (luaL_loadbuffer(L, bootstrap, sizeof bootstrap - 1, "=lbox") != LUA_OK) {
    fprintf(stderr, "lbox: %s\n", lua_tostring(L, -1));
    return 125;
  }
  lua_pushstring(L, exe);
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  int status = 125;
  if (lua_pcall(L, 2, 1, 1) != LUA_OK)
    fprintf(stderr, "lbox: internal error, please report: %s\n", lua_tostring(L, -1));
  else
    status = (int)luaL_optinteger(L, -1, 0);
  lua_close(L);
  return status;
}
