-- lbox export CONTAINER FILE.tar: a container's root filesystem, running or
-- ended and kept, as a tarball (/proc, /sys, /dev and volumes left out), for
-- lbox image import.
local images = require "lbox.images"
local views = require "lbox.views"

local root <close>, file = views.open_command({
  name = "export", synopsis = { "CONTAINER FILE.tar" }, summary = "write a container's filesystem as a tarball",
  description = "The container may be running, or ended and kept. /proc, /sys, /dev and volumes are left "
    .. "out; lbox image import reads the tarball back.",
}, { ... })
if not root then return 0 end
images.export(root.path, file, root.tar_options)
return 0
