/*
 * jb_bpf_object.c: the BPF object reader (see jb_bpf_object.h). Headers, symbols and relocations are copied out
 * of the bytes with memcpy after a bounds check (the bytes need not be aligned); strings are used in place once a
 * NUL is found inside their table.
 */
#include "jb_bpf_object.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the reader takes the object's little-endian fields as they are in memory"
#endif

/* The program sections the reader knows, by their libbpf names: the section says what a program is. */
static const struct {
    const char *name;
    uint32_t type;
    uint32_t expected_attach_type;
} program_sections[] = {
    {"cgroup_skb/egress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS},
    {"cgroup_skb/ingress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS},
};
#define PROGRAM_SECTIONS (sizeof program_sections / sizeof program_sections[0])

/* The most maps the caller may name. */
#define MAX_MAPS 8

#define LD_IMM64 (BPF_LD | BPF_IMM | BPF_DW)

struct reader {
    const uint8_t *bytes;
    size_t size;
    Elf64_Shdr *sections; /* copied out, each one's data checked to lie inside the bytes */
    size_t section_count;
    size_t names;   /* the section names' string table */
    size_t symbols; /* .symtab (0: none) */
    size_t symbol_count;
    size_t maps; /* .maps (0: none) */
    const char **problem;
};

static int refuse(const struct reader *reader, const char *problem) {
    *reader->problem = problem;
    errno = EINVAL;
    return -1;
}

/* Whether LENGTH bytes at OFFSET lie within SIZE (without overflow). */
static int fits(uint64_t size, uint64_t offset, uint64_t length) { return offset <= size && length <= size - offset; }

/* The NUL-terminated string at OFFSET of the string table SECTION, or NULL. */
static const char *string_at(const struct reader *reader, size_t section, uint64_t offset) {
    if (section == 0 || section >= reader->section_count) return NULL;
    const Elf64_Shdr *table = &reader->sections[section];
    if (table->sh_type != SHT_STRTAB || offset >= table->sh_size) return NULL;
    const char *start = (const char *)reader->bytes + table->sh_offset + offset;
    return memchr(start, '\0', table->sh_size - offset) ? start : NULL;
}

/* Symbol INDEX (below symbol_count) into *SYMBOL. */
static void symbol_at(const struct reader *reader, size_t index, Elf64_Sym *symbol) {
    memcpy(symbol, reader->bytes + reader->sections[reader->symbols].sh_offset + index * sizeof *symbol, sizeof *symbol);
}

static const char *symbol_name(const struct reader *reader, const Elf64_Sym *symbol) {
    return string_at(reader, reader->sections[reader->symbols].sh_link, symbol->st_name);
}

/* The index in program_sections of section INDEX when it holds programs, else -1. */
static int program_section(const struct reader *reader, size_t index) {
    const Elf64_Shdr *section = &reader->sections[index];
    if (section->sh_type != SHT_PROGBITS || !(section->sh_flags & SHF_EXECINSTR) || section->sh_size == 0) return -1;
    const char *name = string_at(reader, reader->names, section->sh_name);
    for (size_t i = 0; name && i < PROGRAM_SECTIONS; i++)
        if (strcmp(name, program_sections[i].name) == 0) return (int)i;
    return -1;
}

/* The ELF header and the section headers. */
static int read_sections(struct reader *reader) {
    Elf64_Ehdr header;
    if (reader->size < sizeof header) return refuse(reader, "read the BPF object (shorter than an ELF header)");
    memcpy(&header, reader->bytes, sizeof header);
    if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB ||
        header.e_ident[EI_VERSION] != EV_CURRENT)
        return refuse(reader, "read the BPF object (not a 64-bit little-endian ELF file)");
    if (header.e_type != ET_REL || header.e_machine != EM_BPF)
        return refuse(reader, "read the BPF object (not a relocatable object for the bpf target)");
    /* e_shnum 0 and e_shstrndx SHN_XINDEX mean more than 65279 sections, which no BPF object has. */
    if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shnum == 0 || header.e_shstrndx == SHN_UNDEF || header.e_shstrndx >= header.e_shnum ||
        !fits(reader->size, header.e_shoff, (uint64_t)header.e_shnum * sizeof(Elf64_Shdr)))
        return refuse(reader, "read the BPF object (its section headers lie outside it)");
    reader->section_count = header.e_shnum;
    reader->sections = malloc(reader->section_count * sizeof(Elf64_Shdr));
    if (!reader->sections) return -1;
    memcpy(reader->sections, reader->bytes + header.e_shoff, reader->section_count * sizeof(Elf64_Shdr));
    for (size_t i = 1; i < reader->section_count; i++) {
        const Elf64_Shdr *section = &reader->sections[i];
        if (section->sh_type != SHT_NOBITS && !fits(reader->size, section->sh_offset, section->sh_size))
            return refuse(reader, "read the BPF object (a section lies outside it)");
    }
    reader->names = header.e_shstrndx;
    if (reader->sections[reader->names].sh_type != SHT_STRTAB) return refuse(reader, "read the BPF object (its section names are not a string table)");
    return 0;
}

/* The symbol table, .maps, the license; code only in the program sections the reader knows. */
static int find_sections(struct reader *reader, struct jb_bpf_object *object) {
    for (size_t i = 1; i < reader->section_count; i++) {
        const Elf64_Shdr *section = &reader->sections[i];
        const char *name = string_at(reader, reader->names, section->sh_name);
        if (!name) return refuse(reader, "read the BPF object (a section name lies outside the string table)");
        if (section->sh_type == SHT_SYMTAB) {
            if (reader->symbols) return refuse(reader, "read the BPF object (two symbol tables)");
            reader->symbols = i;
        } else if (strcmp(name, ".maps") == 0) {
            reader->maps = i;
        } else if (strcmp(name, "license") == 0) {
            const char *license = (const char *)reader->bytes + section->sh_offset;
            if (section->sh_type != SHT_PROGBITS || section->sh_size == 0 || !memchr(license, '\0', section->sh_size))
                return refuse(reader, "read the BPF object (its license is not a string)");
            object->license = license;
        } else if (section->sh_type == SHT_PROGBITS && (section->sh_flags & SHF_EXECINSTR) && section->sh_size > 0) {
            if (strcmp(name, ".text") == 0) return refuse(reader, "read the BPF object (it has non-inlined functions, in .text)");
            if (program_section(reader, i) < 0) return refuse(reader, "read the BPF object (code in a section of a program type netacct does not load)");
            if (section->sh_size % sizeof(struct bpf_insn) != 0) return refuse(reader, "read the BPF object (a program section is not whole instructions)");
        }
    }
    if (!reader->symbols) return refuse(reader, "read the BPF object (no symbol table)");
    const Elf64_Shdr *symbols = &reader->sections[reader->symbols];
    if (symbols->sh_entsize != sizeof(Elf64_Sym) || symbols->sh_size % sizeof(Elf64_Sym) != 0 || symbols->sh_link >= reader->section_count ||
        reader->sections[symbols->sh_link].sh_type != SHT_STRTAB)
        return refuse(reader, "read the BPF object (a malformed symbol table)");
    reader->symbol_count = symbols->sh_size / sizeof(Elf64_Sym);
    if (!object->license) return refuse(reader, "read the BPF object (no license)");
    return 0;
}

/* The index of NAME in MAPS, or -1. */
static int map_index(const char *const *maps, size_t map_count, const char *name) {
    for (size_t i = 0; name && i < map_count; i++)
        if (strcmp(maps[i], name) == 0) return (int)i;
    return -1;
}

/* Reads one program's symbol (a function in a program section). */
static int add_program(struct reader *reader, struct jb_bpf_object *object, const Elf64_Sym *symbol, int kind) {
    const Elf64_Shdr *section = &reader->sections[symbol->st_shndx];
    const char *name = symbol_name(reader, symbol);
    if (!name || !*name) return refuse(reader, "read the BPF object (a program without a name)");
    if (symbol->st_size == 0 || symbol->st_value % sizeof(struct bpf_insn) != 0 || symbol->st_size % sizeof(struct bpf_insn) != 0 ||
        !fits(section->sh_size, symbol->st_value, symbol->st_size))
        return refuse(reader, "read the BPF object (a program lies outside its section)");
    if (jb_bpf_object_find_program(object, name) >= 0) return refuse(reader, "read the BPF object (two programs of one name)");
    if (object->program_count == JB_BPF_OBJECT_MAX_PROGRAMS) return refuse(reader, "read the BPF object (more programs than the loader takes)");
    struct jb_bpf_object_program *program = &object->programs[object->program_count++];
    program->name = name;
    program->type = program_sections[kind].type;
    program->expected_attach_type = program_sections[kind].expected_attach_type;
    program->offset = (size_t)(section->sh_offset + symbol->st_value);
    program->count = (size_t)(symbol->st_size / sizeof(struct bpf_insn));
    return 0;
}

/* The programs (function symbols in program sections) and the maps (object symbols in .maps, exactly MAPS). */
static int find_symbols(struct reader *reader, struct jb_bpf_object *object, const char *const *maps, size_t map_count) {
    unsigned seen[MAX_MAPS] = {0};
    for (size_t i = 1; i < reader->symbol_count; i++) {
        Elf64_Sym symbol;
        symbol_at(reader, i, &symbol);
        if (symbol.st_shndx == SHN_UNDEF || symbol.st_shndx >= SHN_LORESERVE || symbol.st_shndx >= reader->section_count) continue;
        int type = ELF64_ST_TYPE(symbol.st_info);
        int kind = program_section(reader, symbol.st_shndx);
        if (type == STT_FUNC && kind >= 0) {
            if (add_program(reader, object, &symbol, kind) != 0) return -1;
        } else if (reader->maps && symbol.st_shndx == reader->maps && type == STT_OBJECT) {
            int map = map_index(maps, map_count, symbol_name(reader, &symbol));
            if (map < 0) return refuse(reader, "read the BPF object (a map that is not in the loader's table)");
            seen[map]++;
        }
    }
    for (size_t i = 0; i < map_count; i++)
        if (seen[i] != 1) return refuse(reader, "read the BPF object (a map of the loader's table is missing or defined twice)");
    return 0;
}

/* Refuses what the loader cannot make whole: calls of other functions (bpf-to-bpf or kernel functions) and
 * 64-bit loads of anything but a constant or a map (which a relocation then names). Helper calls are fine. */
static int check_instructions(const struct reader *reader, const struct jb_bpf_object_program *program) {
    for (size_t i = 0; i < program->count; i++) {
        struct bpf_insn instruction;
        memcpy(&instruction, reader->bytes + program->offset + i * sizeof instruction, sizeof instruction);
        if (instruction.code == (BPF_JMP | BPF_CALL) && instruction.src_reg != 0)
            return refuse(reader, "read the BPF object (a program calls a non-inlined function)");
        if (instruction.code == LD_IMM64) {
            struct bpf_insn second;
            if (i + 1 >= program->count) return refuse(reader, "read the BPF object (a program ends in half an instruction)");
            memcpy(&second, reader->bytes + program->offset + (i + 1) * sizeof second, sizeof second);
            if (instruction.src_reg != 0 || second.code != 0)
                return refuse(reader, "read the BPF object (a 64-bit load of a kind the loader does not make)");
            i++;
        }
    }
    return 0;
}

/* Whether relocation section SECTION is one the programs need (it applies to a program section). */
static int relocates_programs(const struct reader *reader, const Elf64_Shdr *section) {
    return (section->sh_type == SHT_REL || section->sh_type == SHT_RELA) && section->sh_info < reader->section_count &&
           program_section(reader, section->sh_info) >= 0;
}

/* One R_BPF_64_64 relocation of section SECTION: the address of a map, in an ld_imm64 instruction of a program. */
static int add_reference(const struct reader *reader, struct jb_bpf_object *object, const Elf64_Shdr *section, const Elf64_Rel *relocation,
                         const char *const *maps, size_t map_count) {
    if (ELF64_R_TYPE(relocation->r_info) != R_BPF_64_64)
        return refuse(reader, "read the BPF object (a relocation other than a map's address, R_BPF_64_64)");
    size_t index = ELF64_R_SYM(relocation->r_info);
    if (index == 0 || index >= reader->symbol_count) return refuse(reader, "read the BPF object (a relocation names no symbol)");
    Elf64_Sym symbol;
    symbol_at(reader, index, &symbol);
    int map = map_index(maps, map_count, symbol_name(reader, &symbol));
    if (!reader->maps || symbol.st_shndx != reader->maps || map < 0)
        return refuse(reader, "read the BPF object (a relocation of something other than a map: global data or a function)");
    const Elf64_Shdr *target = &reader->sections[section->sh_info];
    if (relocation->r_offset % sizeof(struct bpf_insn) != 0 || !fits(target->sh_size, relocation->r_offset, 2 * sizeof(struct bpf_insn)))
        return refuse(reader, "read the BPF object (a relocation outside the instructions)");
    size_t offset = (size_t)(target->sh_offset + relocation->r_offset);
    for (size_t i = 0; i < object->program_count; i++) {
        const struct jb_bpf_object_program *program = &object->programs[i];
        if (offset < program->offset || offset - program->offset + 2 * sizeof(struct bpf_insn) > program->count * sizeof(struct bpf_insn)) continue;
        struct bpf_insn first, second;
        memcpy(&first, reader->bytes + offset, sizeof first);
        memcpy(&second, reader->bytes + offset + sizeof first, sizeof second);
        if (first.code != LD_IMM64 || first.src_reg != 0 || first.imm != 0 || second.imm != 0)
            return refuse(reader, "read the BPF object (a map relocation on an instruction that is not a plain 64-bit load)");
        object->references[object->reference_count++] = (struct jb_bpf_object_map_reference){
            .program = i, .instruction = (offset - program->offset) / sizeof(struct bpf_insn), .map = (size_t)map};
        return 0;
    }
    return refuse(reader, "read the BPF object (a relocation outside every program)");
}

/* The map references of every program, from the relocation sections of the program sections. */
static int read_relocations(struct reader *reader, struct jb_bpf_object *object, const char *const *maps, size_t map_count) {
    size_t total = 0;
    for (size_t i = 1; i < reader->section_count; i++) {
        const Elf64_Shdr *section = &reader->sections[i];
        /* Others (.rel.BTF, .rel.BTF.ext) are for the BTF, which the loader does not load. */
        if (!relocates_programs(reader, section)) continue;
        if (section->sh_type == SHT_RELA) return refuse(reader, "read the BPF object (relocations with addends)");
        if (section->sh_entsize != sizeof(Elf64_Rel) || section->sh_size % sizeof(Elf64_Rel) != 0 || section->sh_link != reader->symbols)
            return refuse(reader, "read the BPF object (a malformed relocation section)");
        total += section->sh_size / sizeof(Elf64_Rel);
    }
    object->references = calloc(total ? total : 1, sizeof *object->references);
    if (!object->references) return -1;
    for (size_t i = 1; i < reader->section_count; i++) {
        const Elf64_Shdr *section = &reader->sections[i];
        if (!relocates_programs(reader, section)) continue;
        for (uint64_t at = 0; at < section->sh_size; at += sizeof(Elf64_Rel)) {
            Elf64_Rel relocation;
            memcpy(&relocation, reader->bytes + section->sh_offset + at, sizeof relocation);
            if (add_reference(reader, object, section, &relocation, maps, map_count) != 0) return -1;
        }
    }
    return 0;
}

int jb_bpf_object_read(struct jb_bpf_object *object, const void *bytes, size_t size, const char *const *maps, size_t map_count,
                       const char **problem) {
    memset(object, 0, sizeof *object);
    object->bytes = bytes;
    /* No bytes (an empty Swift array has no address) are an empty object. */
    struct reader reader = {.bytes = bytes, .size = bytes ? size : 0, .problem = problem};
    *problem = "read the BPF object";
    int result = map_count > MAX_MAPS ? refuse(&reader, "read the BPF object (the loader names too many maps)") : 0;
    if (result == 0) result = read_sections(&reader);
    if (result == 0) result = find_sections(&reader, object);
    if (result == 0) result = find_symbols(&reader, object, maps, map_count);
    for (size_t i = 0; result == 0 && i < object->program_count; i++) result = check_instructions(&reader, &object->programs[i]);
    if (result == 0) result = read_relocations(&reader, object, maps, map_count);
    int saved = errno;
    free(reader.sections);
    if (result != 0) jb_bpf_object_free(object);
    errno = saved;
    return result;
}

int jb_bpf_object_find_program(const struct jb_bpf_object *object, const char *name) {
    for (size_t i = 0; i < object->program_count; i++)
        if (strcmp(object->programs[i].name, name) == 0) return (int)i;
    return -1;
}

struct bpf_insn *jb_bpf_object_instructions(const struct jb_bpf_object *object, size_t program, const int *map_fds) {
    const struct jb_bpf_object_program *spec = &object->programs[program];
    struct bpf_insn *instructions = malloc(spec->count * sizeof *instructions);
    if (!instructions) return NULL;
    memcpy(instructions, object->bytes + spec->offset, spec->count * sizeof *instructions);
    for (size_t i = 0; i < object->reference_count; i++) {
        const struct jb_bpf_object_map_reference *reference = &object->references[i];
        if (reference->program != program) continue;
        instructions[reference->instruction].src_reg = BPF_PSEUDO_MAP_FD;
        instructions[reference->instruction].imm = map_fds[reference->map];
    }
    return instructions;
}

void jb_bpf_object_free(struct jb_bpf_object *object) {
    free(object->references);
    object->references = NULL;
    object->reference_count = 0;
    object->program_count = 0;
}
