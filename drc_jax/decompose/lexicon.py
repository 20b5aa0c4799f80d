"""General English word classes and morphology for the rule decomposer.

Closed classes (determiners, prepositions, conjunctions, auxiliaries, pronouns), a few frequent
predicate and possession verbs, and regular/irregular inflection. Nothing here is specific to
NegBench's captions or to COCO's object names.
"""

from __future__ import annotations


def words(s: str) -> frozenset[str]:
    """A word set from a space-separated string."""
    return frozenset(s.split())


DETS = words(
    "a an the any single one some other another more such this that these those his her their "
    "its our my your either"
)
CONTAINERS = words(
    "sign signs trace traces hint hints indication indications evidence presence mention mentions "
    "appearance appearances kind kinds type types form forms sort sorts glimpse sight instance "
    "instances example examples reference references attention involvement use usage amount "
    "amounts bit bits element elements scene scenes image images depiction depictions"
)
PREPS = words(
    "in on at to from for with within without by near around inside outside into onto across "
    "behind above below beneath under underneath over through throughout along among amongst "
    "during beside besides between beyond except like of off up down toward towards against upon "
    "about after before past via per amid amidst"
)
CONJ = words(
    "and but while as so yet because since though although where when whereas which who whom "
    "whose that than if nor or instead however unlike whether until unless whilst thus therefore "
    "meanwhile just only rather even"
)
AUX = words(
    "is are was were be been being am 's 're has have had do does did can could will would shall "
    "should may might must isn't aren't wasn't weren't doesn't don't didn't cannot can't won't "
    "hasn't haven't couldn't wouldn't shouldn't there's it's"
)
# Predicates that follow a subject NP ("No dancing takes place", "no car visible").
PREDICATES = words(
    "appear appears appeared appearing take takes took taking make makes made happen happens "
    "happening occur occurs occurring exist exists existing come comes came go goes went seem "
    "seems seemed break breaks broke interrupt interrupts accompany accompanies accompanying "
    "fill fills enter enters remain remains stand stands sit sits lie lies get gets pass passes "
    "feature features featured include includes included involve involves involved show shows "
    "shown visible present seen found spotted noticed detected evident apparent available "
    "anywhere everywhere nowhere here there nearby today either whatsoever else left allowed "
    "permitted shed heard mentioned used needed required depicted pictured displayed captured "
    "in-sight around inside outside whatsoever at all spoiled disturbs disturb mar mars "
    "distract distracts join joins intrude intrudes again anymore too now"
)
# Verbs of having/showing whose object is the negated thing ("doesn't include a cup").
POSSESS = words(
    "include includes including feature features featuring have has having contain contains "
    "containing show shows showing display displays displaying involve involves involving depict "
    "depicts depicting hold holds holding carry carries carrying wear wears wearing need needs "
    "offer offers see find spot notice mention mentions reference references use uses using "
    "present presents presenting"
)
PRONOUN_PERSON = words("anyone anybody someone somebody anyone's")
PRONOUNS = words(
    "it this he she they them there that these those which who what we you i something anything "
    "nothing everything"
)
# Words dropped around the removed clause when building aff.
GLUE = words(
    "there it is are was were 's 're be been with but and while as yet also even still however "
    "so just though although whereas where which that who instead rather only yet whilst thus "
    "meanwhile surprisingly curiously interestingly notably noticeably conspicuously clearly "
    "evidently obviously completely entirely totally absolutely quite very too also further "
    "moreover additionally furthermore indeed all"
)
SCENE_GLUE = words(
    "the a an this that image scene video picture photo photograph frame shot clip view footage "
    "space setting surroundings background in on of within throughout has have had does do "
    "did shows show features feature contains contain includes include appears appear seems seem "
    "to sits sit stands stand lies lie remains remain looks look"
)
MASS = words(
    "water food music rain snow grass sand traffic furniture scenery nature wildlife equipment "
    "luggage clothing smoke fire laughter dialogue dialog text writing violence technology "
    "money hair milk coffee tea wine beer bread meat fruit soup ice art "
    "architecture greenery vegetation foliage sunlight sunshine fog mist dust mud paper litter "
    "trash garbage rubbish debris clutter graffiti lighting decor sound noise color colour media "
    "electricity"
)
IDIOMS_AFTER_NO = words("longer matter doubt wonder less sooner")
NP_LEAD = words("even only just also both all at least")
WITHOUT = words("without sans minus")
QUOTES = frozenset("\"'“”‘’`")
# Words whose -s is not a plural, and irregular singulars.
NOT_PLURAL = words(
    "scissors pants jeans glasses sunglasses eyeglasses clothes shorts trousers binoculars "
    "headphones earphones news series species means politics physics mathematics athletics "
    "gymnastics electronics graphics economics aerobics ethics thanks goods stairs overalls "
    "pajamas pyjamas tongs pliers tweezers"
)
SINGULAR = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "mice": "mouse",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "leaves": "leaf",
    "wolves": "wolf",
    "shelves": "shelf",
    "halves": "half",
    "loaves": "loaf",
    "calves": "calf",
    "thieves": "thief",
    "scarves": "scarf",
    "hooves": "hoof",
    "cookies": "cookie",
    "movies": "movie",
    "pies": "pie",
    "ties": "tie",
    "zombies": "zombie",
    "brownies": "brownie",
    "smoothies": "smoothie",
    "selfies": "selfie",
    "goalies": "goalie",
    "calories": "calorie",
    "rookies": "rookie",
    "hoodies": "hoodie",
    "lies": "lie",
    "police": "police",
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
    "aircraft": "aircraft",
}
NUMBERS = words("two three four five six seven eight nine ten dozen several many few multiple")
INVARIANT_PLURALS = words("people men women children mice feet teeth geese police")
BOUNDARY_PUNCT = frozenset(",;:.!?–—-()[]…")
CLAUSE_CONJ = words(
    "but while whereas yet although though however instead where which so because since whilst "
    "meanwhile"
)
NEG_AUX = words(
    "not isn't aren't wasn't weren't doesn't don't didn't cannot can't won't hasn't haven't "
    "couldn't"
)
POST_OK_AFTER_NEG = words(
    "featured visible present shown seen found involved included pictured depicted in part there "
    "around anywhere appear appears feature features exist exists be available evident spotted "
    "allowed permitted shown captured heard to"
)


def is_word(tok: str) -> bool:
    return tok[0].isalnum()


OPENERS = words("there the this it no a an in these those we")
LY_NOUNS = words("family butterfly dragonfly firefly belly jelly lily bully rally ally holly")


def container_link(container: str, prep: str) -> bool:
    """'signs of', 'mention of', 'reference to': a head that hands over to its complement."""
    if prep == "of":
        return container in CONTAINERS
    return prep == "to" and container in ("reference", "references", "attention")


def participle_or_adverb(w: str) -> bool:
    """'parked', 'sitting', 'currently': words that end a noun phrase ('bed', 'king' do not)."""
    if w.endswith("ed"):
        return len(w) > 4 and not w.endswith("eed")
    if w.endswith("ing"):
        return len(w) > 5 and not w.endswith("thing")
    if w.endswith("ly"):
        return len(w) > 4 and w not in LY_NOUNS
    return False


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


def singular(w: str) -> str:
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
