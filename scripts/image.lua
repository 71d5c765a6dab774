-- lbox image import FILE|DIR NAME | ls | rm NAME...: lbox's image store.
local errors = require "lbox.errors"
local images = require "lbox.images"
local options = require "lbox.options"

local IMAGE = {
  name = "image", synopsis = { "import FILE.tar[.gz|.xz]|DIR NAME", "ls", "rm NAME..." },
  summary = "manage lbox's image store",
  description = "import: a docker export or podman export tarball (gzip or xz compressed, or not), or a "
    .. "directory, as image NAME; every tar header is checked first (no absolute paths, .., device nodes, "
    .. "symlinks out of the image). ls: the images. rm: remove images. The built-in busybox image is made "
    .. "from Debian's busybox-static on first use.",
  operands = { 1 },
}

local commands = {}

function commands.import(source, name, extra)
  if not source or not name or extra then errors.raise("usage: lbox image import FILE|DIR NAME") end
  local image = images.import(source, name)
  print(image.name)
end

function commands.ls(extra)
  if extra then errors.raise("usage: lbox image ls") end
  print(string.format("%-24s %-22s %s", "NAME", "CREATED", "SOURCE"))
  for _, m in ipairs(images.list()) do
    print(string.format("%-24s %-22s %s", m.name, m.created or "", m.source or ""))
  end
end

function commands.rm(...)
  if select("#", ...) == 0 then errors.raise("usage: lbox image rm NAME...") end
  for _, name in ipairs { ... } do
    images.remove(name)
    print(name)
  end
end

local opts, args = options.command(IMAGE, { ... })
if not opts then return 0 end
local command = args[1]
if not commands[command] then errors.raise(string.format("unknown image command %q (see lbox image --help)", command)) end
commands[command](table.unpack(args, 2))
return 0
