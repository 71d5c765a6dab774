-- lbox commit CONTAINER IMAGE: a new image from a container's root
-- filesystem, running or ended and kept (its changes included; /proc, /sys,
-- /dev and volumes left out).
local errors = require "lbox.errors"
local images = require "lbox.images"
local views = require "lbox.views"

local container, name, extra = ...
if not container or not name or extra then errors.raise("usage: lbox commit CONTAINER IMAGE") end
local root <close> = views.open(container)
print(images.import(root.path, name).name)
return 0
