"""The parser registry: every supported format is one row; detection tries them in this order.

Order matters only where two formats could claim the same file: the more specific one comes
first (NIST CAID before VICS, ICSE and HashKeeper before generic CSV, md5sum last).
"""

from __future__ import annotations

from triage.hashsets._base import Parser
from triage.hashsets.csvsets import CsvParser, HashKeeperParser, IcseParser, NsrlRds2Parser
from triage.hashsets.sqlite import NsrlRds3Parser, TskKdbParser
from triage.hashsets.text import HashdeepParser, Md5sumParser, TskIdxParser
from triage.hashsets.vics import NsrlCaidParser, VicsParser

FORMATS: dict[str, Parser] = {
    parser.id: parser
    for parser in (
        VicsParser(),
        NsrlCaidParser(),
        NsrlRds3Parser(),
        TskKdbParser(),
        HashdeepParser(),
        TskIdxParser(),
        NsrlRds2Parser(),
        HashKeeperParser(),
        IcseParser(),
        CsvParser(),
        Md5sumParser(),
    )
}
