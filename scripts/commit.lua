-- lbox commit CONTAINER IMAGE: a new image from a container's root
-- filesystem, running or ended and kept (its changes included; /proc, /sys,
-- /dev and volumes left out).
local options = require "lbox.options"
local images = require "lbox.images"
local views = require "lbox.views"

local opts, args = options.command({
  usage = "lbox commit CONTAINER IMAGE",
  summary = "A new image from a container's root filesystem, running or ended and kept.",
  operands = { 2, 2 },
}, { ... })
if not opts then return 0 end
local container, name = args[1], args[2]
local root <close> = views.open(container)
print(images.import(root.path, name).name)
return 0
