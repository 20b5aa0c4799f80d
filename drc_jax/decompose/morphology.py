"""English noun and verb inflection: the one singular/plural table of the package."""

from __future__ import annotations

from drc_jax.decompose.lexicon import MASS, PRONOUN_PERSON, words


def pairs(s: str) -> dict[str, str]:
    """A table from space-separated "key:value" words (a key listed twice is a mistake)."""
    items = [w.split(":") for w in s.split()]
    out = dict(items)
    if len(out) != len(items):
        raise ValueError(f"key listed twice in {s[:40]!r}...")
    return out


# Words whose -s is not a plural.
NOT_PLURAL = words(
    "scissors pants jeans glasses sunglasses eyeglasses clothes shorts trousers binoculars "
    "headphones earphones news series species means politics physics mathematics athletics "
    "gymnastics electronics graphics economics aerobics ethics thanks goods stairs overalls "
    "pajamas pyjamas tongs pliers tweezers goggles leggings tights slacks earmuffs suspenders"
)
# Irregular plural -> singular (the only such table; plurals are read off it by inversion).
SINGULAR = pairs(
    "people:person men:man women:woman children:child mice:mouse feet:foot teeth:tooth "
    "geese:goose knives:knife wives:wife lives:life leaves:leaf wolves:wolf shelves:shelf "
    "halves:half loaves:loaf calves:calf thieves:thief scarves:scarf hooves:hoof cookies:cookie "
    "movies:movie pies:pie ties:tie zombies:zombie brownies:brownie smoothies:smoothie "
    "selfies:selfie goalies:goalie calories:calorie rookies:rookie hoodies:hoodie lies:lie "
    "police:police sheep:sheep fish:fish deer:deer aircraft:aircraft"
)
# Plurals that are not singular + s (and so keep their form inside a phrase).
INVARIANT_PLURALS = words("people men women children mice feet teeth geese police")
_PLURAL = {s: p for p, s in SINGULAR.items() if p != s}
LY_NOUNS = words("family butterfly dragonfly firefly belly jelly lily bully rally ally holly")


def singular(w: str) -> str:
    """'cars' -> 'car', 'buses' -> 'bus', 'puppies' -> 'puppy', 'people' -> 'person'."""
    if w in SINGULAR:
        return SINGULAR[w]
    if len(w) < 4 or not w.endswith("s") or w in NOT_PLURAL:
        return w
    if w.endswith(("ss", "us", "is", "ics", "'s")):
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("uses"):  # buses, houses
        return w[:-2] if len(w) <= 5 else w[:-1]
    if w.endswith(("ches", "shes", "sses", "xes", "zes")):
        return w[:-2]
    if w.endswith("oes") and len(w) > 5:
        return w[:-2]
    return w[:-1]


def plural_forms(w: str) -> set[str]:
    """Every spelling a plural of singular ``w`` may take (regular guesses and the irregular)."""
    forms = {w, w + "s", w + "es", _PLURAL.get(w, w)}
    if w.endswith("y"):
        forms.add(w[:-1] + "ies")
    if w.endswith("fe"):
        forms.add(w[:-2] + "ves")
    if w.endswith("f"):
        forms.add(w[:-1] + "ves")
    return forms


def concept_phrase(word: str) -> str:
    """One word as a negated concept: 'sofas' -> 'a sofa', 'snow' -> 'snow', 'anyone' -> 'a
    person'."""
    w = word.lower().replace("’", "'")
    sing = singular(w)
    if sing == "person" or w in PRONOUN_PERSON:
        return "a person"
    if sing in MASS or (w.endswith("ing") and len(w) > 5):
        return sing
    return ("an " if sing[0] in "aeiou" else "a ") + sing


def participle_or_adverb(w: str) -> bool:
    """'parked', 'sitting', 'currently': words that end a noun phrase ('bed', 'king' do not)."""
    if w.endswith("ed"):
        return len(w) > 4 and not w.endswith("eed")
    if w.endswith("ing"):
        return len(w) > 5 and not w.endswith("thing")
    if w.endswith("ly"):
        return len(w) > 4 and w not in LY_NOUNS
    return False


def is_gerund(w: str, shortest: int = 5) -> bool:
    """An -ing form of at least ``shortest`` letters ("running"; not "king" at the default)."""
    return len(w) >= shortest and w.endswith("ing")


def is_adverb(w: str) -> bool:
    """An -ly adverb ("noticeably"; not "family")."""
    return w.endswith("ly") and w not in LY_NOUNS


def third_person(w: str) -> bool:
    """A verb form in -s ("runs", "sings"; not "glass")."""
    return len(w) > 3 and w.endswith("s") and not w.endswith("ss")


def participle(w: str) -> bool:
    """A past participle: "played", "worn", "driven", "shown", "held", "cut"."""
    return (len(w) > 3 and w.endswith(("ed", "en", "wn", "ne"))) or w in _IRREGULAR_PARTICIPLES


def gerund(verb: str) -> str:
    """'runs' -> 'running', 'sings' -> 'singing', 'makes' -> 'making', 'cries' -> 'crying'."""
    v = verb
    if v.endswith("ies") and len(v) > 4:
        v = v[:-3] + "y"
    elif v.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        v = v[:-2]
    elif v.endswith("s") and not v.endswith("ss"):
        v = v[:-1]
    if v.endswith("ie"):
        return v[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and len(v) > 2:
        return v[:-1] + "ing"
    vowels = "aeiou"
    if (
        len(v) >= 3
        and v[-1] not in vowels + "wxy"
        and v[-2] in vowels
        and v[-3] not in vowels
        and (len(v) <= 4 or v[-4] not in vowels)
        and len(v) <= 4
    ):
        return v + v[-1] + "ing"
    return v + "ing"


# Irregular past participles and their gerunds ("eaten" -> "eating").
_IRREGULAR_PARTICIPLES = pairs(
    "eaten:eating ridden:riding driven:driving worn:wearing written:writing thrown:throwing "
    "shown:showing done:doing held:holding sung:singing drunk:drinking taken:taking "
    "given:giving seen:seeing made:making built:building flown:flying drawn:drawing "
    "grown:growing spoken:speaking broken:breaking chosen:choosing swum:swimming sold:selling "
    "told:telling caught:catching bought:buying brought:bringing fought:fighting "
    "taught:teaching won:winning beaten:beating hidden:hiding bitten:biting blown:blowing "
    "known:knowing sewn:sewing mown:mowing cut:cutting put:putting set:setting hit:hitting "
    "shut:shutting spread:spreading kept:keeping fed:feeding led:leading paid:paying "
    "laid:laying hung:hanging sent:sending spent:spending lit:lighting dug:digging "
    "swept:sweeping struck:striking stolen:stealing frozen:freezing woken:waking shaken:shaking "
    "torn:tearing sworn:swearing"
)


def participle_gerund(w: str) -> str:
    """The activity a passive participle names: 'played' -> 'playing', 'eaten' -> 'eating'."""
    if w in _IRREGULAR_PARTICIPLES:
        return _IRREGULAR_PARTICIPLES[w]
    if not w.endswith("ed") or len(w) < 4:
        return w
    if w.endswith("ied"):
        base = w[:-3] + "y"
    elif w[-3] == w[-4] and w[-3] not in "aeiouls":  # stopped, dragged
        return w[:-3] + w[-3] + "ing"
    elif w[-3] in "cvzug" or (w[-3] == "s" and w[-4] != "s"):  # danced, moved, used, changed
        base = w[:-1]
    else:
        base = w[:-2]
    return gerund(base + "s")
