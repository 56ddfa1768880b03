# A stand-in for the official `postgres` image, built on a root filesystem imported by
# make-local-postgres-base.sh (Debian's PostgreSQL server package, no cluster).
ARG BASE=keymint-postgres-rootfs:17
FROM ${BASE}
ARG PG_MAJOR=17
ENV PG_MAJOR=${PG_MAJOR} \
    PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
# The socket directory is world-writable with the sticky bit, as in the official image; PGDATA
# belongs to postgres so that a new named volume starts with that owner.
RUN mkdir -p /var/run/postgresql "$PGDATA" \
 && chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql \
 && chmod 3777 /var/run/postgresql \
 && chmod 0700 "$PGDATA" \
 && mkdir -p /docker-entrypoint-initdb.d
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
# Fast shutdown (the official image's choice); SIGTERM (smart shutdown) is clean as well.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
