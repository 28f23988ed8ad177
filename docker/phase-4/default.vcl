vcl 4.1;
# written by scalelab's topology runner: the CDN tier (L3).
# The builtin VCL honours Cache-Control (s-maxage, max-age, private, no-store)
# and does not cache requests with Authorization or responses with Set-Cookie;
# varnishd runs with default_ttl=0 so only what the app marks cacheable is kept.

backend default {
    .host = "haproxy";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
}

# PURGE comes from the app instances.
acl purgers {
    "127.0.0.1";
    "172.16.0.0"/12;
    "10.213.0.0"/16;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (!client.ip ~ purgers) { return (synth(405, "Not allowed")); }
        return (purge);
    }
}

# The cache key is the URL alone, not the builtin's URL + Host: the app
# serves the same public view under every name it is reached by
# (localhost:PORT, 127.0.0.1:PORT, a proxy's own Host), and a purge, which
# looks up the same hash, must remove every copy. With Host in the key one
# PURGE removed only the copy under the purger's Host and the others stayed
# for the whole s-maxage.
sub vcl_hash {
    hash_data(req.url);
    return (lookup);
}

# Compression: the app encodes bodies over 1 KiB (gzip or zstd) and says
# Vary: Accept-Encoding. varnishd's http_gzip_support (on by default)
# normalises the client's Accept-Encoding to gzip or nothing, fetches gzip
# from the app, keeps one gzip object per URL and gunzips it for clients
# that do not take gzip; a PURGE removes every variant.

sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
