-- lbox export CONTAINER FILE.tar: a container's root filesystem, running or
-- ended and kept, as a tarball (/proc, /sys, /dev and volumes left out), for
-- lbox image import.
local images = require "lbox.images"
local options = require "lbox.options"
local rootfs = require "lbox.rootfs"

local EXPORT = {
  name = "export", synopsis = { "CONTAINER FILE.tar" }, summary = "write a container's filesystem as a tarball",
  description = "The container may be running, or ended and kept. /proc, /sys, /dev and volumes are left "
    .. "out; lbox image import reads the tarball back.",
}
local args = { ... }
local _, first = options.command(EXPORT, args)
local container, file, extra = table.unpack(args, first)
if not container or not file or extra then options.usage_error(EXPORT) end
local root <close> = rootfs.open(container)
images.export(root.path, file)
return 0
