-- podman (Debian's 4.3, with conmon) driving lbox-oci as its runtime: the
-- real client of the OCI runtime command line, on an image imported
-- offline from a tarball of the built-in busybox image. Everything podman
-- keeps (its storage, run and tmp directories) is under a directory of
-- the spec's; the network is none (no CNI).
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"

describe("podman with lbox-oci as its runtime #podman", function()
  local dir, podman
  local IMAGE = "localhost/lbox-busybox"
  local before

  local function run(...)
    local argv = { table.unpack(podman) }
    for _, word in ipairs { ... } do argv[#argv + 1] = word end
    return helper.exec(argv, { timeout = 120 })
  end

  lazy_setup(function()
    assert.is_truthy(fs.find_program("podman"), "podman is missing: make deps installs it (vendor/test.txt)")
    assert.are.equal(0, helper.lbox_run({ "run", "true" }).code) -- the built-in image
    dir = assert(io.popen("mktemp -d /tmp/lbox-podman.XXXXXX")):read("l")
    podman = { fs.find_program("podman"), "--root", dir .. "/root", "--runroot", dir .. "/run", "--tmpdir",
               dir .. "/tmp", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
               "--runtime", helper.root .. "/lbox-oci" }
    local r = helper.sh(string.format("tar -C %s/images/busybox/rootfs -cf %s/busybox.tar .", helper.store, dir))
    assert.are.equal(0, r.code, r.err)
    r = run("import", dir .. "/busybox.tar", IMAGE)
    assert.are.equal(0, r.code, r.err)
  end)

  lazy_teardown(function()
    if dir then
      run("rm", "--all", "--force")
      fs.remove_tree(dir)
    end
  end)

  before_each(function()
    before = helper.snapshot()
  end)

  after_each(function()
    helper.assert_no_leaks(before)
  end)

  it("podman run --rm IMAGE echo", function()
    local r = run("run", "--rm", "--network", "none", IMAGE, "echo", "hello", "from", "podman")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("hello from podman\n", r.out)
    r = run("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 7")
    assert.are.equal(7, r.code, r.err)
  end)

  it("podman run --memory: an allocation past the limit is OOM-killed", function()
    local function allocate(size)
      return run("run", "--rm", "--network", "none", "--memory", "30m", "--memory-swap", "30m", IMAGE,
                 "dd", "if=/dev/zero", "of=/dev/null", "bs=" .. size, "count=1")
    end
    local r = allocate("10M")
    assert.are.equal(0, r.code, r.err)
    r = allocate("60M")
    assert.are.equal(137, r.code, r.err)
  end)

  it("podman pause, unpause and stop (TERM reaches the process)", function()
    local function status()
      return run("inspect", "--format", "{{.State.Status}}", "lbox-podman-stop").out
    end
    local r = run("run", "-d", "--network", "none", "--name", "lbox-podman-stop", IMAGE, "sh", "-c",
                  "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(0, run("pause", "lbox-podman-stop").code)
    assert.are.equal("paused\n", status())
    assert.are.equal(0, run("unpause", "lbox-podman-stop").code)
    assert.are.equal("running\n", status())
    r = run("stop", "--time", "60", "lbox-podman-stop")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("exited\n", status())
    assert.are.equal("3\n", run("inspect", "--format", "{{.State.ExitCode}}", "lbox-podman-stop").out)
    assert.are.equal(0, run("rm", "lbox-podman-stop").code)
  end)

  it("podman run -it: the process on a terminal of its size, typed input reaches it", function()
    local argv = { table.unpack(podman) }
    for _, word in ipairs { "run", "-it", "--rm", "--network", "none", IMAGE, "sh", "-c",
                            "stty size; tty; read line; echo got-$line; exit 6" } do
      argv[#argv + 1] = word
    end
    local term = helper.start_pty(argv, 31, 91)
    assert.is_true(helper.expect(term, "/dev/%S+", 120), term.output)
    assert.matches("31 91", term.output)
    core.write(term.master, "typed\r")
    assert.is_true(helper.expect(term, "got%-typed", 60), term.output)
    assert.are.equal(6, helper.finish_pty(term, 60))
  end)

  it("podman run -d, exec, kill, wait and rm", function()
    local r = run("run", "-d", "--network", "none", "--name", "lbox-podman", IMAGE, "sleep", "1000")
    assert.are.equal(0, r.code, r.err)
    r = run("exec", "lbox-podman", "sh", "-c", "echo in $(hostname); exit 5")
    assert.are.equal(5, r.code, r.err)
    assert.matches("^in %x+\n$", r.out)
    assert.are.equal(0, run("kill", "lbox-podman").code)
    r = run("wait", "lbox-podman")
    assert.are.equal("137\n", r.out)
    assert.are.equal(0, run("rm", "lbox-podman").code)
  end)
end)
