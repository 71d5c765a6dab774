-- An untrusted build in a box: no network, a read-only root, the sources
-- read-only at /src, a tmpfs at /work to build in, memory and process limits.
--   lbox examples/sandbox SOURCE_DIR [COMMAND...]
local lbox = require "lbox"
local lfs = require "lfs"

local options = require "lbox.options"

local opts, args = options.command({
  name = "examples/sandbox", synopsis = { "SOURCE_DIR [COMMAND...]" },
  summary = "an untrusted build in a box: no network, a read-only root, SOURCE_DIR read-only at /src, "
    .. "a tmpfs at /work, memory and process limits",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local source = args[1]
if source:sub(1, 1) ~= "/" then source = lfs.currentdir() .. "/" .. source end
local command = table.move(args, 2, #args, 1, {})
if #command == 0 then
  command = { "sh", "-c", "cp -r /src/. /work/ && ls /work && if [ -f Makefile ]; then make; fi" }
end

local status = lbox.run {
  command = command,
  -- the default namespaces: a network namespace with nothing but a loopback, down
  read_only = true,
  tmpfs = { "/work" },
  workdir = "/work",
  volumes = { { host = source, target = "/src", readonly = true } },
  limits = { memory = 256 * 1024 * 1024, memory_swap = 256 * 1024 * 1024, pids = 64 },
}
if status.oom then io.stderr:write("sandbox: the build ran out of memory\n") end
return status.exit_code
