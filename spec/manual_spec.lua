-- The manual and the completion, made by `make` (build/doc) from the tables
-- --help prints: each page says what --help says, groff renders each
-- without a warning, and bash completes commands, options, containers and
-- images.
local helper = require "helper"
local lfs = require "lfs"

local DOC = helper.root .. "/build/doc"

local function pages(section)
  local found = {}
  for name in lfs.dir(DOC .. "/man" .. section) do
    if name:match("%." .. section .. "$") then found[#found + 1] = DOC .. "/man" .. section .. "/" .. name end
  end
  table.sort(found)
  return found
end

-- What bash completes for `line` (the cursor at its end), with the
-- completion script loaded; the command word is this checkout's lbox.
local function complete(line)
  local r = helper.exec { "/bin/bash", "-c", [==[
    source "$0"
    read -ra COMP_WORDS <<< "$1"
    [[ $1 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$1 COMP_POINT=${#1}
    _lbox
    printf '%s\n' "${COMPREPLY[@]}" | sort -u
  ]==], DOC .. "/completion/lbox", helper.lbox .. " " .. line }
  assert.are.equal(0, r.code, r.err)
  local words = {}
  for word in r.out:gmatch("[^\n]+") do words[#words + 1] = word end
  return words
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

describe("the manual", function()
  it("has lbox(1), a page per command saying what its --help says, and lbox-api(7)", function()
    local commands = {}
    for _, page in ipairs(pages(1)) do
      local name = page:match("/lbox%-([%w-]+)%.1$")
      if name then commands[#commands + 1] = name end
    end
    for _, expected in ipairs { "commit", "exec", "export", "image", "inspect", "kill", "logs", "network",
                                "network-create", "network-ls", "network-inspect", "network-rm", "ps", "rm", "run",
                                "stats", "stop", "wait" } do
      assert.is_true(contains(commands, expected), "no page for lbox " .. expected)
    end
    assert.is_truthy(helper.read_file(DOC .. "/man1/lbox.1"))
    assert.matches("%.SH NAME\nlbox\\%-api", helper.read_file(DOC .. "/man7/lbox-api.7"))
    for _, name in ipairs(commands) do
      -- lbox-network-create(1) is lbox network create's
      local argv = {}
      for word in name:gmatch("[^-]+") do argv[#argv + 1] = word end
      argv[#argv + 1] = "--help"
      local help = helper.lbox_run(argv)
      assert.are.equal(0, help.code, help.err)
      local page = helper.read_file(DOC .. "/man1/lbox-" .. name .. ".1"):gsub("\\%-", "-")
      -- every option --help lists, with its text, and no other
      local listed = 0
      for names, text in help.out:gmatch("\n  +(%-[^\n]-)   +([^\n]*)") do
        listed = listed + 1
        assert.is_truthy(page:find("\n.B " .. names .. "\n" .. text .. "\n", 1, true), name .. ": " .. names)
      end
      local _, in_page = page:gsub("\n%.TP\n", "")
      assert.are.equal(listed, in_page, name)
      local command = table.concat(argv, " ", 1, #argv - 1)
      assert.is_truthy(page:find(help.out:match("^usage: lbox " .. command .. " ?([^\n]*)"), 1, true), name)
    end
  end)

  it("renders with groff without a warning", function()
    local all = pages(1)
    for _, page in ipairs(pages(7)) do all[#all + 1] = page end
    for _, page in ipairs(all) do
      local r = helper.exec { "/usr/bin/groff", "-man", "-Tutf8", "-ww", "-z", page }
      assert.are.same({ 0, "" }, { r.code, r.err }, page)
    end
  end)

  it("and lbox --version give lbox's version", function()
    local r = helper.lbox_run { "--version" }
    local version = assert(helper.read_file(helper.root .. "/lua/lbox/init.lua"):match('lbox.version = "([^"]+)"'))
    assert.are.same({ 0, "lbox " .. version .. "\n" }, { r.code, r.out })
    assert.matches('"lbox ' .. version:gsub("%.", "%%.") .. '"', helper.read_file(DOC .. "/man1/lbox.1"))
  end)
end)

describe("bash completion", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("completes commands and each command's options", function()
    assert.are.same({ "login", "logout", "logs" }, complete("lo"))
    assert.are.same({ "--memory", "--memory-swap" }, complete("run --memo"))
    assert.are.same({ "--tail" }, complete("logs --ta"))
    assert.are.same({ "--force" }, complete("rm --f"))
    assert.are.same({ "import", "inspect", "ls", "prune", "rm", "save" }, complete("image "))
    assert.are.same({ "create", "inspect", "ls", "rm" }, complete("network "))
    assert.are.same({ "--gateway" }, complete("network create --ga"))
  end)

  it("completes container names and ids, and images", function()
    local r = helper.lbox_run { "run", "-d", "--name", "spec-completion", "sleep", "30" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:sub(1, 12)
    assert.are.same({ "spec-completion" }, complete("logs spec-comp"))
    assert.are.same({ "spec-completion" }, complete("stop -t 1 spec-comp"))
    assert.are.same({ id }, complete("exec " .. id:sub(1, 6)))
    assert.is_true(contains(complete("run busy"), "busybox"))
    assert.are.same({ "busybox" }, complete("image rm busy"))
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", "spec-completion" }).code)
  end)
end)
