vcl 4.1;
# The CDN tier (L3) of phase 4 (varnish image, mounted read-only at
# /etc/varnish/default.vcl). It mirrors what scalelab's runner writes from
# topologies/templates/default.vcl.tmpl: the builtin VCL honours
# Cache-Control (s-maxage, max-age, private, no-store) and caches neither
# requests with Authorization nor responses with Set-Cookie; varnishd runs
# with default_ttl=0 and default_grace=0 (see phase-4.compose.yaml), so only
# what the app marks cacheable is kept. What differs, and why:
#   - the backend is HAProxy at its static address on the phase-4 network
#     (the runner: 127.0.0.1 and HAProxy's port). An address, not the name
#     "haproxy": varnishd resolves backend names once, when it compiles
#     the VCL;
#   - PURGE is allowed from the compose network, minus its gateway, which
#     is where connections to the ports published on the host come from
#     (the runner allows 127.0.0.1, where everything runs);
#   - the cache key is the URL only (vcl_hash below). The builtin key is
#     URL + Host, and here the Host header differs by who asks: a client on
#     the host sends "127.0.0.1:8080" or "localhost:8080", while the app
#     instances send their PURGE to --purge-url=http://varnish:6081, so
#     "varnish:6081". With the builtin key a PURGE would never hit what
#     clients cached. One site sits behind this Varnish, so the URL alone
#     is the right key.

backend default {
    .host = "10.213.4.10";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
}

acl purgers {
    "10.213.4.0"/24;
    ! "10.213.4.1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (!client.ip ~ purgers) { return (synth(405, "Not allowed")); }
        return (purge);
    }
}

sub vcl_hash {
    hash_data(req.url);
    return (lookup);
}

sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
