/* nftables through libnftables (libnftables(3)): run a ruleset text as the
 * `nft` command would, in one transaction. Which rules is Lua's choice.
 * The library (with libnftnl, libxtables, jansson and gmp behind it) is
 * loaded on first use: linked in, it cost every lbox command some 2 ms of
 * start-up, and most never touch nftables. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <string.h>

#include "core.h"

#define NFT_LIBRARY "libnftables.so.1"

static struct {
  __typeof__(nft_ctx_new) *ctx_new;
  __typeof__(nft_ctx_free) *ctx_free;
  __typeof__(nft_ctx_output_set_flags) *output_set_flags;
  __typeof__(nft_ctx_buffer_output) *buffer_output;
  __typeof__(nft_ctx_buffer_error) *buffer_error;
  __typeof__(nft_ctx_get_output_buffer) *get_output_buffer;
  __typeof__(nft_ctx_get_error_buffer) *get_error_buffer;
  __typeof__(nft_run_cmd_from_buffer) *run_cmd_from_buffer;
} nft;

/* Load the library once: NULL, or why it could not be. */
static const char *nft_load(void) {
  static void *library;
  if (library)
    return NULL;
  void *handle = dlopen(NFT_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return dlerror();
  struct { void **slot; const char *name; } symbols[] = {
    {(void **)&nft.ctx_new, "nft_ctx_new"},
    {(void **)&nft.ctx_free, "nft_ctx_free"},
    {(void **)&nft.output_set_flags, "nft_ctx_output_set_flags"},
    {(void **)&nft.buffer_output, "nft_ctx_buffer_output"},
    {(void **)&nft.buffer_error, "nft_ctx_buffer_error"},
    {(void **)&nft.get_output_buffer, "nft_ctx_get_output_buffer"},
    {(void **)&nft.get_error_buffer, "nft_ctx_get_error_buffer"},
    {(void **)&nft.run_cmd_from_buffer, "nft_run_cmd_from_buffer"},
  };
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    if (!(*symbols[i].slot = dlsym(handle, symbols[i].name))) {
      const char *why = dlerror();
      dlclose(handle);
      return why;
    }
  }
  library = handle;
  return NULL;
}

/* nft(commands [, json]) -> output | fail, msg, errno: run `commands` (nft
 * syntax, or JSON when `json` is true) as one transaction; output is what
 * `nft` would print (listings), "" for changes. */
static int nft_run(lua_State *L) {
  const char *commands = luaL_checkstring(L, 1);
  int json = lua_toboolean(L, 2);
  const char *unloadable = nft_load();
  if (unloadable) {
    luaL_pushfail(L);
    lua_pushfstring(L, "nft: cannot load %s: %s", NFT_LIBRARY, unloadable);
    lua_pushinteger(L, ENOENT);
    return 3;
  }
  struct nft_ctx *ctx = nft.ctx_new(NFT_CTX_DEFAULT);
  if (!ctx)
    return lbox_fail_errno(L, ENOMEM, "nft", NULL);
  if (json)
    nft.output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  nft.buffer_output(ctx);
  nft.buffer_error(ctx);
  int failed = nft.run_cmd_from_buffer(ctx, commands) != 0;
  if (failed) {
    /* the first line names the problem; the rest points into the input */
    const char *msg = nft.get_error_buffer(ctx);
    size_t len = msg ? strcspn(msg, "\n") : 0;
    luaL_pushfail(L);
    lua_pushliteral(L, "nft: ");
    if (len)
      lua_pushlstring(L, msg, len);
    else
      lua_pushliteral(L, "failed");
    lua_concat(L, 2);
    lua_pushinteger(L, EINVAL);
    nft.ctx_free(ctx);
    return 3;
  }
  lua_pushstring(L, nft.get_output_buffer(ctx));
  nft.ctx_free(ctx);
  return 1;
}

static const luaL_Reg nft_funcs[] = {
  {"nft", nft_run},
  {NULL, NULL}
};

void lbox_open_nft(lua_State *L) {
  luaL_setfuncs(L, nft_funcs, 0);
}
