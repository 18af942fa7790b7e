--- Sanitizer reports in what a test's processes printed, shared by the lab
-- harness (lab.lua, suite.lua), the unit suites' runner (tests/unit/bin.lua)
-- and the suites that run programs themselves.
--
-- In the sanitizer build (tests/tests.cmake) ASan, LSan and UBSan exit with
-- EXIT, a code no lmdisc command and no tool the tests run uses: a refusal
-- (exit 1) and a memory error can no longer pass for each other.  And
-- whatever the exit code, a report in the output fails the test: an
-- instrumented program's report is checked even when the test expected it
-- to fail.
local M = {}

--- The exit code of the sanitizers in the test environment.
M.EXIT = 86

--- What starts every report (ASan errors and deadly signals, LSan, UBSan).
M.MARKERS = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer",
    "Sanitizer:DEADLYSIGNAL", "runtime error:",
}

--- The report in text (from its first marker), or nil.
function M.report(text)
    if type(text) ~= "string" then return nil end
    local first
    for _, m in ipairs(M.MARKERS) do
        local at = text:find(m, 1, true)
        if at and (not first or at < first) then first = at end
    end
    if first then
        -- from the start of the report's line
        local bol = first
        while bol > 1 and text:sub(bol - 1, bol - 1) ~= "\n" do bol = bol - 1 end
        return text:sub(bol)
    end
end

--- A report in text, or the sanitizers' exit code: a message naming what
-- ran, or nil when neither.
function M.problem(what, text, code)
    local r = M.report(text)
    if r then
        return ("%s printed a sanitizer report (exit %s):\n%s"):format(what, tostring(code), r)
    end
    if code == M.EXIT then
        return ("%s exited %d, the sanitizers' exit code:\n%s"):format(what, M.EXIT, tostring(text))
    end
end

--- Raise (at the caller's caller) when what ran printed a report or exited
-- with the sanitizers' code.
function M.check(what, text, code, level)
    local p = M.problem(what, text, code)
    if p then error(p, (level or 1) + 1) end
end

--- The environment's sanitizer options with extra ones (e.g.
-- "detect_leaks=0" for an uninstrumented interpreter that preloads the
-- runtimes), as a shell prefix "ASAN_OPTIONS=... "; the exit code stays.
function M.asan_env(extra)
    local base = os.getenv("ASAN_OPTIONS") or ("exitcode=" .. M.EXIT)
    return ("ASAN_OPTIONS='%s%s' "):format(base, extra and (":" .. extra) or "")
end

return M
