-- Every recipe in scripts/examples runs, as a user would run it.
local helper = require "helper"

describe("example recipes", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("sandbox: no network, read-only root and sources, a tmpfs to work in, limits", function()
    local r = helper.lbox_run { "examples/sandbox", helper.fixtures, "sh", "-c",
      "ls /src | head -1; touch /src/x 2>&1; touch /y 2>&1; ip -o link | grep -c 'state UP'; "
      .. "echo built > /work/out && cat /work/out; cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; true" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("^no%-shebang.sh\n", r.out)
    assert.matches("/src/x: Read%-only file system", r.out .. r.err)
    assert.matches("/y: Read%-only file system", r.out .. r.err)
    assert.matches("\n0\nbuilt\n64\n$", r.out)
  end)

  it("pipeline: a producer's output feeds a consumer", function()
    local r = helper.lbox_run { "examples/pipeline", "250" }
    assert.are.same({ 0, "consumer got 250 lines\n" }, { r.code, r.out }, r.err)
  end)

  it("matrix: one command under three memory limits", function()
    local r = helper.lbox_run { "examples/matrix" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("16m +137 +out of memory\n", r.out)
    assert.matches("64m +0 +ok\n", r.out)
    assert.matches("256m +0 +ok\n", r.out)
  end)

  it("lua_payload: a Lua function as the container's PID 1", function()
    local r = helper.lbox_run { "examples/lua_payload" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("hello from a Lua function: pid 1 on lua%-inside, 1 process%(es%) in sight\n", r.out)
    assert.matches("exit code: 3\n$", r.out)
  end)

  it("network: two containers on a private bridge, one publishing a port", function()
    local r = helper.lbox_run { "examples/network", "18091" }
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("hello from web\nweb 80: exit 0\nhello from web\n127.0.0.1 18091: exit 0\n", r.out)
  end)

  it("stay short: each recipe under 40 lines", function()
    local p = io.popen("wc -l " .. helper.root .. "/scripts/examples/*.lua")
    local counted = 0
    for count, file in p:read("a"):gmatch("(%d+) (%S+%.lua)") do
      assert.is_true(tonumber(count) < 40, file)
      counted = counted + 1
    end
    p:close()
    assert.are.equal(5, counted)
  end)
end)
