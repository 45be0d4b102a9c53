#!/usr/bin/perl
# flood.pl: the attackers of test_flood.sh and bench_flood.sh (docs/reliability.md, "Slow and
# flooding peers"). Perl, because perl-base is in every Debian system and has sockets and select.
#
#   flood.pl slowloris PORT N SECS [SRC]  N connections to 127.0.0.1:PORT (from address SRC, default
#       127.0.0.1), each sending a request line and then one header byte a second; stops when the
#       server has closed every one, or after SECS. Prints "cut K of N, the last after T s".
#   flood.pl conns PORT N SECS [SRC]     N connections at once, sending nothing; a connection the
#       server closes within 2 s is counted as refused. The others are held until the server closes
#       them or SECS pass. Prints "refused R of N; held H".
#   flood.pl proxy PORT UPSTREAM MODE    listens on 127.0.0.1:PORT (prints "listening" once it does)
#       and forwards every request to 127.0.0.1:UPSTREAM, one request per connection, except
#       GET /v1/block/...: MODE silent reads it and never answers; MODE trickle answers with the
#       upstream's response one byte a second. Runs until killed (TERM ends its children too).
#
# Every byte goes to loopback addresses only.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use POSIX ();

$| = 1;
my $mode = shift @ARGV // die "usage: flood.pl slowloris|conns|proxy ...\n";

sub connect_to {
    my ($port, $src) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                 ($src ? (LocalAddr => $src) : ()), Timeout => 5);
}

# Whether the server closed $s (end of stream or reset); reads and drops whatever it sent.
sub closed_by_server {
    my ($s) = @_;
    my $buf;
    my $n = sysread($s, $buf, 65536);
    return !defined($n) || $n == 0;
}

if ($mode eq 'slowloris') {
    my ($port, $n, $secs, $src) = @ARGV;
    my (@socks, %open);
    for my $i (1 .. $n) {
        my $s = connect_to($port, $src) or next;
        syswrite($s, "GET /v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        push @socks, $s;
        $open{fileno $s} = $s;
    }
    my ($t0, $cut, $last) = (time, 0, 0);
    my $sel = IO::Select->new(@socks);
    my $next_byte = $t0 + 1;
    while (%open && time - $t0 < $secs) {
        for my $s ($sel->can_read(0.1)) {
            next unless closed_by_server($s);
            $sel->remove($s);
            delete $open{fileno $s};
            close $s;
            $cut++;
            $last = time - $t0;
        }
        if (time >= $next_byte) {
            local $SIG{PIPE} = 'IGNORE';
            syswrite($_, "X") for values %open; # one more byte of a header that never ends
            $next_byte += 1;
        }
    }
    printf "cut %d of %d, the last after %.1f s\n", $cut, scalar(@socks), $last;
    exit 0;
}

if ($mode eq 'conns') {
    my ($port, $n, $secs, $src) = @ARGV;
    my @socks;
    for my $i (1 .. $n) {
        my $s = connect_to($port, $src) or next;
        push @socks, $s;
    }
    my $t0 = time;
    my $sel = IO::Select->new(@socks);
    my ($refused, $later) = (0, 0);
    while ($sel->count && time - $t0 < $secs) {
        for my $s ($sel->can_read(0.1)) {
            next unless closed_by_server($s);
            $sel->remove($s);
            close $s;
            if (time - $t0 < 2) { $refused++ } else { $later++ }
        }
    }
    printf "refused %d of %d; held %d (closed later: %d)\n", $refused, scalar(@socks),
        scalar(@socks) - $refused - $later, $later;
    exit 0;
}

if ($mode eq 'proxy') {
    my ($port, $up, $how) = @ARGV;
    die "MODE must be silent or trickle\n" unless $how =~ /^(silent|trickle)$/;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 128,
                                  ReuseAddr => 1, Proto => 'tcp') or die "listen $port: $!\n";
    my %kids;
    $SIG{TERM} = sub { kill 'TERM', keys %kids; exit 0 };
    $SIG{CHLD} = sub { while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) { delete $kids{$p} } };
    print "listening\n";
    while (1) {
        my $c = $l->accept or next;
        my $pid = fork;
        if (!defined $pid) { close $c; next }
        if ($pid) { $kids{$pid} = 1; close $c; next }
        $SIG{TERM} = 'DEFAULT';
        close $l;
        serve_one($c, $up, $how);
        exit 0;
    }
}

# One request from $c: its head (and a body of Content-Length bytes), to the upstream, with
# "Connection: close"; the answer back, at once or a byte a second.
sub serve_one {
    my ($c, $up, $how) = @_;
    my $req = '';
    while ($req !~ /\r\n\r\n/) {
        my $n = sysread($c, $req, 65536, length $req);
        return if !$n;
    }
    my ($head, $body) = split /\r\n\r\n/, $req, 2;
    my $is_block = $head =~ m{^GET /v1/block/};
    if ($is_block && $how eq 'silent') {
        my $buf;
        1 while sysread($c, $buf, 65536); # never answers; reads until the client gives up
        return;
    }
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    $len //= 0;
    while (length($body) < $len) {
        my $n = sysread($c, $body, 65536, length $body);
        return if !$n;
    }
    $head =~ s/^Connection:[^\r\n]*\r\n//mgi;
    $head .= "\r\nConnection: close";
    my $u = connect_to($up) or return;
    syswrite($u, "$head\r\n\r\n$body");
    my $resp = '';
    1 while sysread($u, $resp, 65536, length $resp);
    close $u;
    local $SIG{PIPE} = 'IGNORE';
    if ($is_block) {
        for my $i (0 .. length($resp) - 1) { # 1 byte/s: the fetcher's low-speed limit cuts this
            syswrite($c, substr($resp, $i, 1)) or return;
            sleep 1;
        }
    } else {
        my $off = 0;
        while ($off < length $resp) {
            my $w = syswrite($c, $resp, length($resp) - $off, $off) or return;
            $off += $w;
        }
    }
}

die "unknown mode $mode\n";
