-- lbox export CONTAINER FILE.tar: a container's root filesystem, running or
-- ended and kept, as a tarball (/proc, /sys, /dev and volumes left out), for
-- lbox image import.
local options = require "lbox.options"
local images = require "lbox.images"
local views = require "lbox.views"

local opts, args = options.command({
  usage = "lbox export CONTAINER FILE.tar",
  summary = "A container's root filesystem, running or ended and kept, as a tarball.",
  operands = { 2, 2 },
}, { ... })
if not opts then return 0 end
local container, file = args[1], args[2]
local root <close> = views.open(container)
images.export(root.path, file)
return 0
