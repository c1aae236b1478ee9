-- keyshift forward auth for HAProxy 2.6+: `http-request lua.keyshift-auth URL`.
--
-- Sends the request's Authorization header(s) to keyshift's /verify at URL
-- (with `?scope=` for the scopes a rule requires). On 200 it sets the five
-- identity headers keyshift answered with; on any other answer it replies to
-- the client with keyshift's status, WWW-Authenticate and Retry-After, and
-- the request goes no further. keyshift unreachable: 503.

local IDENTITY = { "X-Auth-Subject", "X-Auth-Client", "X-Auth-Scope", "X-Auth-Alg", "X-Auth-Kid" }
local PASSED_BACK = { "www-authenticate", "retry-after" }

-- HAProxy's header tables are indexed from 0.
local function values(headers, name)
    local list = {}
    local found = headers and headers[name]
    if found then
        for i = 0, #found do
            if found[i] ~= nil then list[#list + 1] = found[i] end
        end
    end
    return list
end

core.register_action("keyshift-auth", { "http-req" }, function(txn, url)
    local auth = values(txn.http:req_get_headers(), "authorization")
    local sent = {}
    if #auth > 0 then sent["authorization"] = auth end
    local res = core.httpclient():get({ url = url, headers = sent, timeout = 5000 })
    if res == nil or res.status == nil or res.status == 0 then
        txn:done(txn:reply({ status = 503, headers = { ["retry-after"] = { "5" } } }))
        return
    end
    if res.status == 200 then
        for _, name in ipairs(IDENTITY) do
            txn.http:req_del_header(name)
            local v = values(res.headers, name:lower())
            if v[1] ~= nil and v[1] ~= "" then
                txn.http:req_set_header(name, v[1])
            end
        end
        return
    end
    local headers = {}
    for _, name in ipairs(PASSED_BACK) do
        local v = values(res.headers, name)
        if #v > 0 then headers[name] = v end
    end
    txn:done(txn:reply({ status = res.status, headers = headers, body = "" }))
end, 1)
