#!/usr/bin/perl
# The perl workload of //tools:bench programs/perl: word and word-pair
# frequencies of a text (tools/programs/workloads.py makes it and computes
# what this must print). Hashes of many small strings, arrays of them, joins
# and sorts: allocation dominates.
#   perl wordfreq.pl TEXT
use strict;
use warnings;

my $MOD = 1000000007;
my (%count, %pairs, %possum, %lines_of);
my $lineno = 0;
open(my $in, '<', $ARGV[0]) or die "cannot open $ARGV[0]: $!\n";
while (my $line = <$in>) {
    $lineno++;
    my @ws = split ' ', $line;
    for my $w (@ws) {
        $count{$w}++;
        $possum{$w} = (($possum{$w} // 0) * 31 + $lineno) % $MOD;
        push @{$lines_of{$w}}, $lineno;
    }
    for my $i (1 .. $#ws) {
        $pairs{"$ws[$i - 1] $ws[$i]"}++;
    }
}
close($in);

# The per-word line lists must agree with the counts (and are freed word by word).
for my $w (keys %lines_of) {
    my $list = delete $lines_of{$w};
    die "line list of $w has " . scalar(@$list) . " entries, count $count{$w}\n"
        if scalar(@$list) != $count{$w};
}

my $words = 0;
$words += $_ for values %count;
printf "words %d distinct %d pairs %d\n", $words, scalar(keys %count), scalar(keys %pairs);
my @top = (sort { $count{$b} <=> $count{$a} or $a cmp $b } keys %count)[0 .. 19];
printf "word %s %d %d\n", $_, $count{$_}, $possum{$_} for grep { defined } @top;
my @ptop = (sort { $pairs{$b} <=> $pairs{$a} or $a cmp $b } keys %pairs)[0 .. 19];
printf "pair %s %d\n", $_, $pairs{$_} for grep { defined } @ptop;
my $check = 0;
for my $w (sort keys %count) {
    $check = ($check * 131 + $count{$w} * length($w) + $possum{$w}) % $MOD;
}
printf "check %d\n", $check;
