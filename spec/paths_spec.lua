-- lbox.paths: paths inside a container's root, resolved as the container
-- would see them, never leading out of the root.
local helper = require "helper"
local lfs = require "lfs"
local paths = require "lbox.paths"

describe("lbox.paths.secure_join", function()
  local root
  before_each(function()
    root = os.tmpname()
    os.remove(root)
    assert(lfs.mkdir(root))
    for _, dir in ipairs { "/etc", "/usr", "/usr/lib", "/real" } do assert(lfs.mkdir(root .. dir)) end
    assert(lfs.link("/etc", root .. "/absolute", true))               -- absolute: from the root
    assert(lfs.link("../../../../..", root .. "/usr/lib/up", true))   -- climbs past the top
    assert(lfs.link("real", root .. "/relative", true))
    assert(lfs.link("loop2", root .. "/loop1", true))
    assert(lfs.link("loop1", root .. "/loop2", true))
  end)
  after_each(function()
    assert.are.equal(0, helper.sh("rm -rf '" .. root .. "'").code)
  end)

  it("joins plain paths, ignoring . and extra slashes", function()
    assert.are.equal(root .. "/etc/passwd", paths.secure_join(root, "/etc//./passwd"))
    assert.are.equal(root .. "/", paths.secure_join(root, "/"))
  end)

  it("follows symlinks inside the root, absolute ones from the root", function()
    assert.are.equal(root .. "/etc/x", paths.secure_join(root, "/absolute/x"))
    assert.are.equal(root .. "/real/x", paths.secure_join(root, "/relative/x"))
  end)

  it("never climbs out of the root, by .. or by a symlink", function()
    assert.are.equal(root .. "/etc", paths.secure_join(root, "/../../etc"))
    assert.are.equal(root .. "/etc", paths.secure_join(root, "/usr/lib/up/etc"))
  end)

  it("gives up on a symlink loop with a user error", function()
    local ok, err = pcall(paths.secure_join, root, "/loop1/x")
    assert.is_false(ok)
    assert.matches("too many levels of symbolic links in /loop1/x", err.message)
  end)
end)
