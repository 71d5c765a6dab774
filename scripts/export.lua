-- lbox export CONTAINER FILE.tar: a running container's root filesystem as
-- a tarball (/proc, /sys, /dev and volumes left out), for lbox image import.
local errors = require "lbox.errors"
local images = require "lbox.images"
local rootfs = require "lbox.rootfs"

local container, file, extra = ...
if not container or not file or extra then errors.raise("usage: lbox export CONTAINER FILE.tar") end
local _, pid = rootfs.find_running(container)
images.export(pid, file)
return 0
