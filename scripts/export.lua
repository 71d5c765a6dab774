-- lbox export CONTAINER FILE.tar: a container's root filesystem, running or
-- ended and kept, as a tarball (/proc, /sys, /dev and volumes left out), for
-- lbox image import.
local errors = require "lbox.errors"
local images = require "lbox.images"
local views = require "lbox.views"

local container, file, extra = ...
if not container or not file or extra then errors.raise("usage: lbox export CONTAINER FILE.tar") end
local root <close> = views.open(container)
images.export(root.path, file)
return 0
