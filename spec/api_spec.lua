-- The Lua API: a container is a value with start, wait, kill and destroy.
local core = require "lbox.core"
local helper = require "helper"
local lbox = require "lbox"

describe("lbox API", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("destroys a running container with everything it holds", function()
    local box = lbox.container { command = { "sh", "-c", "sleep 30 & sleep 30" }, limits = { memory = 64 * 1024 * 1024 } }
    assert.are.equal("created", box.state)
    box:start()
    assert.are.equal("running", box.state)
    assert.is_true(#helper.container_cgroups() > 0)
    assert.is_true(box:destroy())
    assert.are.equal("exited", box.state)
    assert.are.same({ "killed", core.SIGKILL }, { box.status.how, box.status.code })
    assert.are.same({}, helper.container_cgroups())
  end)

  it("runs a spec to its end and reports the status", function()
    local status = lbox.run { command = { "sh", "-c", "exit 3" }, hostname = "api" }
    assert.are.same({ 3, "exited", false }, { status.exit_code, status.how, status.oom or false })
  end)

  it("sends signals to PID 1", function()
    local box = lbox.container { command = { "sh", "-c", "trap 'exit 4' USR1; while :; do sleep 0.05; done" } }
    box:start()
    helper.sleep(0.2)
    assert.is_true(box:kill(core.SIGUSR1))
    assert.are.equal(4, box:wait().exit_code)
    assert.is_nil(box:kill(core.SIGUSR1))
  end)

  it("checks the spec before anything exists", function()
    for _, bad in ipairs {
      {}, { command = "sh" }, { command = { 1 } }, { command = { "true" }, hostname = "a b" },
      { command = { "true" }, namespaces = { "time" } }, { command = { "true" }, limits = { memroy = 1 } },
      { command = { "true" }, limits = { memory = 1 } }, { command = { "true" }, workdir = "tmp" },
      { command = { "true" }, env = { [1] = "A=1" } },
    } do
      assert.has_error(function() lbox.container(bad) end)
    end
    assert.are.same({}, helper.container_cgroups())
  end)
end)
