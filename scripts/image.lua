-- lbox image import FILE|DIR NAME | ls | rm NAME...: lbox's image store.
local errors = require "lbox.errors"
local images = require "lbox.images"

local USAGE = [[
usage: lbox image import FILE.tar[.gz|.xz]|DIR NAME   import a docker/podman export or a directory
       lbox image ls                                  list images
       lbox image rm NAME...                          remove images]]

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

local command = ...
if command == nil or command == "--help" or command == "-h" then
  print(USAGE)
  return command and 0 or 125
end
if not commands[command] then errors.raise(string.format("unknown image command %q (see lbox image --help)", command)) end
commands[command](select(2, ...))
return 0
