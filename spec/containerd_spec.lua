-- containerd (Debian's 1.6) driving lbox-oci through its runc shim
-- (containerd-shim-runc-v2: create --bundle --pid-file --log --log-format
-- json, start, state, exec, pause, resume, kill, delete), with ctr as the
-- client. The spec starts a containerd of its own: its root, state, socket
-- and config under a directory of the spec's, the native snapshotter (no
-- overlay on whatever /tmp is), lbox-oci's --root there too (ctr's
-- --runc-root), stopped by pid at the end. The image is
-- lbox's built-in busybox, saved as an OCI layout and imported offline.
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"

describe("containerd with lbox-oci as its runc #containerd", function()
  local dir, ctr, containerd_pid
  local IMAGE = "localhost/lbox-busybox:latest"
  local before

  local function client(...)
    local argv = { table.unpack(ctr) }
    for _, word in ipairs { ... } do argv[#argv + 1] = word end
    return helper.exec(argv, { timeout = 120 })
  end

  local function run(...)
    return client("run", "--snapshotter", "native", "--runc-binary", helper.root .. "/lbox-oci",
                  "--runc-root", dir .. "/runc", ...)
  end

  local function task_status(id)
    local r = client("task", "ls")
    return r.out:match("\n" .. id:gsub("%p", "%%%0") .. "%s+%d+%s+(%u+)")
  end

  lazy_setup(function()
    assert.is_truthy(fs.find_program("containerd"), "containerd is missing: make deps installs it (vendor/test.txt)")
    assert.are.equal(0, helper.lbox_run({ "run", "true" }).code) -- the built-in image
    dir = assert(io.popen("mktemp -d /tmp/lbox-containerd.XXXXXX")):read("l")
    local config = assert(io.open(dir .. "/config.toml", "w"))
    config:write(string.format([[
version = 2
root = "%s/root"
state = "%s/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "%s/containerd.sock"
[ttrpc]
  address = "%s/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
]], dir, dir, dir, dir))
    config:close()
    ctr = { fs.find_program("ctr"), "--address", dir .. "/containerd.sock", "--namespace", "lbox-spec" }
    -- started by a shell that exits at once: containerd is no child of
    -- busted's, whose children the leak checks count
    local r = helper.sh(string.format("containerd --config %s/config.toml >%s/containerd.log 2>&1 & echo $!", dir, dir))
    assert.are.equal(0, r.code, r.err)
    containerd_pid = math.tointeger(tonumber(r.out))
    assert.is_truthy(helper.eventually(function() return client("version").code == 0 end, 60),
                     "containerd did not answer: " .. tostring(helper.read_file(dir .. "/containerd.log")))
    r = helper.lbox_run { "image", "save", "busybox", "oci:" .. dir .. "/layout:latest" }
    assert.are.equal(0, r.code, r.err)
    r = helper.sh(string.format("tar -C %s/layout -cf %s/busybox.tar .", dir, dir))
    assert.are.equal(0, r.code, r.err)
    r = client("image", "import", "--base-name", "localhost/lbox-busybox", dir .. "/busybox.tar")
    assert.are.equal(0, r.code, r.err)
  end)

  lazy_teardown(function()
    if containerd_pid then
      core.kill(containerd_pid, core.SIGTERM)
      helper.eventually(function() return not fs.kind("/proc/" .. containerd_pid) end, 30)
    end
    if dir then fs.remove_tree(dir) end
  end)

  before_each(function()
    before = helper.snapshot()
  end)

  after_each(function()
    -- a failed test's containers go first, so that the next starts clean
    local left = client("containers", "ls", "-q").out
    for id in left:gmatch("%S+") do
      client("task", "rm", "--force", id)
      client("containers", "rm", id)
    end
    -- the shim's runtime root is --runc-root/NAMESPACE
    local states = helper.sh("ls " .. dir .. "/runc/lbox-spec 2>/dev/null").out
    for id in states:gmatch("%S+") do
      helper.exec { helper.root .. "/lbox-oci", "--root", dir .. "/runc/lbox-spec", "delete", "--force", id }
    end
    helper.assert_no_leaks(before)
    assert.are.equal("", left, "containerd containers left behind")
    assert.are.equal("", states, "lbox-oci's state left under the shim's root")
  end)

  it("ctr run --rm IMAGE echo, and its exit status", function()
    local r = run("--rm", IMAGE, "lbox-ctr-1", "echo", "hi")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("hi\n", r.out)
    r = run("--rm", IMAGE, "lbox-ctr-2", "sh", "-c", "exit 7")
    assert.are.equal(7, r.code, r.err)
  end)

  it("ctr run -d, task exec, pause, resume, kill and rm", function()
    local r = run("-d", IMAGE, "lbox-ctr-3", "sleep", "1000")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("RUNNING", task_status("lbox-ctr-3"))
    r = client("task", "exec", "--exec-id", "e1", "lbox-ctr-3", "sh", "-c", "echo beside $(cat /proc/1/comm); exit 5")
    assert.are.equal(5, r.code, r.err)
    assert.are.equal("beside sleep\n", r.out) -- in the container's pid namespace
    assert.are.equal(0, client("task", "pause", "lbox-ctr-3").code)
    assert.are.equal("PAUSED", task_status("lbox-ctr-3"))
    assert.are.equal(0, client("task", "resume", "lbox-ctr-3").code)
    assert.are.equal("RUNNING", task_status("lbox-ctr-3"))
    assert.are.equal(0, client("task", "kill", "--signal", "SIGKILL", "lbox-ctr-3").code)
    assert.is_truthy(helper.eventually(function() return task_status("lbox-ctr-3") == "STOPPED" end, 30))
    r = client("task", "rm", "lbox-ctr-3")
    assert.are.equal(0, r.code, r.err)
    r = client("containers", "rm", "lbox-ctr-3")
    assert.are.equal(0, r.code, r.err)
  end)
end)
