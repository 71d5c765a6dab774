-- lbox commit CONTAINER IMAGE: a new image from a container's root
-- filesystem, running or ended and kept (its changes included; /proc, /sys,
-- /dev and volumes left out).
local images = require "lbox.images"
local options = require "lbox.options"
local views = require "lbox.views"

local opts, args = options.command({
  name = "commit", synopsis = { "CONTAINER IMAGE" }, summary = "save a container's filesystem as a new image",
  description = "The container may be running, or ended and kept (run -d without --rm). Its changes are "
    .. "included; /proc, /sys, /dev and volumes are left out.",
  operands = { 2, 2 },
}, { ... })
if not opts then return 0 end
local container, name = args[1], args[2]
local root <close> = views.open(container)
print(images.import(root.path, name, root.tar_options).name)
return 0
