-- lbox commit CONTAINER IMAGE: a new image from a running container's root
-- filesystem (its changes included; /proc, /sys, /dev and volumes left out).
local errors = require "lbox.errors"
local images = require "lbox.images"
local rootfs = require "lbox.rootfs"

local container, name, extra = ...
if not container or not name or extra then errors.raise("usage: lbox commit CONTAINER IMAGE") end
local _, pid = rootfs.find_running(container)
print(images.commit(pid, name).name)
return 0
