-- lbox commit CONTAINER IMAGE: a new image from a container's root
-- filesystem, running or ended and kept (its changes included; /proc, /sys,
-- /dev and volumes left out).
local images = require "lbox.images"
local options = require "lbox.options"
local rootfs = require "lbox.rootfs"

local COMMIT = {
  name = "commit", synopsis = { "CONTAINER IMAGE" }, summary = "save a container's filesystem as a new image",
  description = "The container may be running, or ended and kept (run -d without --rm). Its changes are "
    .. "included; /proc, /sys, /dev and volumes are left out.",
}
local args = { ... }
local _, first = options.command(COMMIT, args)
local container, name, extra = table.unpack(args, first)
if not container or not name or extra then options.usage_error(COMMIT) end
local root <close> = rootfs.open(container)
print(images.import(root.path, name).name)
return 0
