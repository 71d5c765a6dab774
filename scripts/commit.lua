-- lbox commit CONTAINER IMAGE: a new image from a container's root
-- filesystem, running or ended and kept (its changes included; /proc, /sys,
-- /dev and volumes left out).
local images = require "lbox.images"
local views = require "lbox.views"

local root <close>, name = views.open_command({
  name = "commit", synopsis = { "CONTAINER IMAGE" }, summary = "save a container's filesystem as a new image",
  description = "The container may be running, or ended and kept (run -d without --rm). Its changes are "
    .. "included; /proc, /sys, /dev and volumes are left out.",
}, { ... })
if not root then return 0 end
print(images.import(root.path, name, root.tar_options).name)
return 0
