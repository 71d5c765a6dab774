-- lbox login [-u USER] [--password-stdin] [--insecure] REGISTRY: store
-- credentials for pulls from REGISTRY, mode 0600 (lbox.registry).
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local registry = require "lbox.registry"

local opts, args = options.command({
  name = "login", synopsis = { "[-u USER] [-p PASSWORD | --password-stdin] [--insecure] REGISTRY" },
  summary = "log in to a registry",
  description = "Checks USER and PASSWORD with REGISTRY (its token server, or Basic authentication) and "
    .. "stores them in $LBOX_STORE/auth.json, mode 0600, for lbox pull. Without -p or --password-stdin the "
    .. "password is read from standard input, one line.",
  options = {
    { "username", short = "u", value = "USER", help = "the user (default: asked on standard input)" },
    { "password", short = "p", value = "PASSWORD", help = "the password (it shows in ps: prefer --password-stdin)" },
    { "password-stdin", help = "read the password from standard input" },
    { "insecure", help = "plain HTTP to this registry (no TLS)" },
  },
  operands = { 1, 1 },
}, { ... })
if not opts then return 0 end
local user = opts.username
if not user then
  if core.isatty(0) then io.stderr:write("Username: ") end
  user = io.read("l")
end
local password = opts.password
if not password then
  if core.isatty(0) and not opts["password-stdin"] then io.stderr:write("Password: ") end
  password = io.read("l")
end
if not user or user == "" or user:find(":") then errors.raise("login: a user name (without ':') is required") end
if not password or password == "" then errors.raise("login: a password is required") end
registry.login(args[1], user, password, { insecure = opts.insecure })
print("Login Succeeded")
return 0
